"""The Ray engine: each stack of trials (``sweep.stacks``), or each trial where the model
cannot be stacked, is a Ray task with its resource request, on a local Ray instance or a
cluster (``address``).

The caller stays the only writer of results: a task returns its trials' outcomes and the
driver hands them to ``on_done`` as tasks finish. A task whose worker process dies is run
again by Ray (``MAX_RETRIES``); since outcomes only come back when a task ends, a trial is
never lost and never reported twice. A task that still fails fails its trials (the contract's
failed outcome). Ray is an optional extra: ``pip install 'lrkit[ray]'``.

A cluster's ``address`` is checked before any work (``require_ray``): it must be HOST:PORT
(or Ray's ``auto``, ``local``, ``ray://HOST:PORT``) and a gRPC server must answer there
within ``CONNECT_TIMEOUT_S`` (Ray's GCS and its client server speak gRPC). Ray itself tries
an address about 20 times, 40 s each for a server that accepts and never answers, and writes
log lines for each try; here it gets ``CONNECT_TRIES`` tries, its log lines are held back,
and an address it cannot reach is one error that names it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from lrkit.errors import LrkitValueError, quoted
from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup, TrialJob, failed_outcome
from lrkit.sweep.stacks import make_stacks
from lrkit.sweep.trials import run_job, run_stack
from lrkit.training.records import TrialOutcome

INSTALL_HINT = "pip install 'lrkit[ray]'"
MAX_RETRIES = 3
"""Runs of a task after its worker died (Ray's retries on system failures)."""

Finished = list[tuple[Any, TrialOutcome]]

CONNECT_TIMEOUT_S = 5.0
"""How long the check of an address waits for the connection, and then for an answer."""
CONNECT_TRIES = 3
"""Ray's tries to reach a cluster's GCS at ``ray.init`` (its own default is about 20), unless
``RAY_gcs_server_port_wait_time_s`` says otherwise."""
RAY_TRIES_VARIABLE = "RAY_gcs_server_port_wait_time_s"
KEYWORD_ADDRESSES = ("auto", "local")
"""Addresses Ray resolves itself: a cluster found from the environment, a new local one."""
HTTP2_SETTINGS = 4
GRPC_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, HTTP2_SETTINGS, 0, 0, 0, 0, 0])
"""A gRPC client's first bytes (HTTP/2, RFC 9113 section 3.4): the connection preface and an
empty SETTINGS frame. A server answers with a frame of its own, SETTINGS first: its 9-byte
header has the frame's type at byte 3."""


def require_ray(address: str | None = None) -> Any:
    """The ``ray`` module, or the error that says how to install it; with ``address``, the
    error that says it is not a cluster's address or that nothing answers there."""
    try:
        import ray
    except ImportError:
        raise LrkitValueError(
            f"the ray engine needs Ray: {INSTALL_HINT}",
            cli_message=f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}",
        ) from None
    if address is not None:
        check_address(address)
    return ray


def check_address(address: str) -> None:
    """Refuse an ``address`` that is not HOST:PORT (an IPv6 host in brackets), optionally
    after ``ray://``, nor ``auto`` or ``local``; or where no gRPC server answers within
    ``CONNECT_TIMEOUT_S`` (refused, no such host, no answer, not gRPC). With Ray's TLS on
    (``RAY_USE_TLS``) only the connection is checked."""
    if address in KEYWORD_ADDRESSES:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise _address_error(
            address,
            "is not HOST:PORT (a Ray head node's address, as 'ray start --head' prints it), "
            "ray://HOST:PORT, auto or local",
        )
    tls = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as server:
            answer = _first_frame(server) if not tls else None
    except socket.gaierror:
        raise _unreachable(address, f"no host named {host}") from None
    except TimeoutError:
        raise _unreachable(address, f"no answer within {CONNECT_TIMEOUT_S:g} s") from None
    except ConnectionRefusedError:
        raise _unreachable(address, "connection refused") from None
    except OSError as exc:
        raise _unreachable(address, exc.strerror or str(exc)) from None
    if answer is not None and (len(answer) < 9 or answer[3] != HTTP2_SETTINGS):
        raise _unreachable(address, "the server there does not speak gRPC")


def _first_frame(server: socket.socket) -> bytes:
    """The header of the first HTTP/2 frame the ``server`` sends after ``GRPC_HELLO``
    (shorter if it closes the connection first)."""
    server.sendall(GRPC_HELLO)
    answer = b""
    while len(answer) < 9:
        chunk = server.recv(9 - len(answer))
        if not chunk:
            break
        answer += chunk
    return answer


def _unreachable(address: str, why: str) -> LrkitValueError:
    return _address_error(
        address,
        f"reaches no Ray cluster ({why}); start one with 'ray start --head', or leave "
        "--address out to run on a local Ray instance",
    )


def _address_error(address: str, problem: str) -> LrkitValueError:
    return LrkitValueError(
        f"address {quoted(address)} {problem}",
        cli_message=f"--address {quoted(address)} {problem}",
    )


def train_task(jobs: Sequence[TrialJob], setup: TrainingSetup, stacked: bool) -> Finished:
    """What a Ray task runs: one stack on the vectorized loop, or its jobs one at a time on
    the plain loop, on the task's device; the outcomes, in the order they ended."""
    on_device = setup.on(setup.device)
    finished: Finished = []
    if stacked:
        run_stack(jobs, on_device, lambda key, outcome: finished.append((key, outcome)))
    else:
        finished = [(job.key, run_job(job, on_device)) for job in jobs]
    return finished


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray, started (``address``, or a local instance) unless this process already runs it,
    and stopped at the end only if started here: one session around many sweeps (a ladder's)
    saves starting Ray and its workers for each."""
    ray = require_ray(address)
    started_here = not ray.is_initialized()
    if started_here:
        _start(ray, address)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def _start(ray: Any, address: str | None) -> None:
    """``ray.init``: quiet (its log lines held back, and written out only if it starts),
    with ``CONNECT_TRIES`` tries at a cluster's ``address``, an address it cannot reach
    refused as bad input, and this process's SIGTERM handler left as it was (Ray's would
    exit without the caller's clean-up)."""
    # Local workers import the user's modules (--model pkg:factory) as the driver does.
    paths = [p for p in sys.path if p] + [os.getcwd()]
    on_sigterm = signal.getsignal(signal.SIGTERM)
    tries = os.environ.get(RAY_TRIES_VARIABLE)
    if address is not None and tries is None:
        os.environ[RAY_TRIES_VARIABLE] = str(CONNECT_TRIES)
    try:
        with _stderr_held_back():
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}},
            )
    except (ConnectionError, ValueError) as exc:
        if address is None:
            raise
        raise _unreachable(address, " ".join(str(exc).split())) from None
    finally:
        if address is not None and tries is None:
            del os.environ[RAY_TRIES_VARIABLE]
        if on_sigterm is not None and signal.getsignal(signal.SIGTERM) != on_sigterm:
            signal.signal(signal.SIGTERM, on_sigterm)


@contextlib.contextmanager
def _stderr_held_back() -> Iterator[None]:
    """File descriptor 2 into a temporary file for the block (Ray's core writes its log
    lines there directly, past Python's logging): written out after the block, dropped if
    it raises (its error is then the one line that says what went wrong)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        os.write(2, sink.read())


class RayEngine:
    """Stacks (``stacked``) or single trials as Ray tasks, at least ``tasks`` of them."""

    name = "ray"

    def __init__(self, address: str | None = None, tasks: int = 1, stacked: bool = True):
        self.address, self.tasks, self.stacked = address, tasks, stacked

    def run(self, jobs: Sequence[TrialJob], setup: TrainingSetup, events: EngineEvents) -> None:
        """Submit every group as a task and report each outcome as tasks finish. Without an
        address (and no Ray already running in this process) a local instance is started
        for the run and stopped after it."""
        if self.stacked:
            groups = [s.jobs for s in make_stacks(jobs, self.tasks, len(setup.train))]
        else:
            groups = [(job,) for job in jobs]
        with ray_session(self.address) as ray:
            self._submit(ray, groups, setup, events)

    def _submit(
        self,
        ray: Any,
        groups: Sequence[Sequence[TrialJob]],
        setup: TrainingSetup,
        events: EngineEvents,
    ) -> None:
        task = ray.remote(train_task).options(
            num_cpus=1,
            num_gpus=1 if setup.device.type == "cuda" else 0,
            max_retries=MAX_RETRIES,
            retry_exceptions=False,
        )
        # Tasks get the data on the CPU (Ray's object store) and move it to their device.
        shared = ray.put(dataclasses.replace(setup.on(torch.device("cpu")), device=setup.device))
        running = {}
        submitted = {}
        for group in groups:
            if events.on_start is not None:
                events.on_start(tuple(job.key for job in group))
            ref = task.remote(list(group), shared, self.stacked)
            running[ref], submitted[ref] = group, time.perf_counter()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                group = running.pop(ref)
                try:
                    finished = ray.get(ref)
                except Exception as exc:  # the task failed after its retries
                    outcome = failed_outcome(exc, time.perf_counter() - submitted[ref])
                    finished = [(job.key, outcome) for job in group]
                for key, outcome in finished:
                    events.on_done(key, outcome)
