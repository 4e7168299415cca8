"""The Ray engine: each stack of trials (``sweep.stacks``), or each trial where the model
cannot be stacked, is a Ray task with its resource request, on a local Ray instance or a
cluster (``address``).

The caller stays the only writer of results: a task returns its trials' outcomes and the
driver hands them to ``on_done`` as tasks finish. A task whose worker process dies is run
again by Ray (``MAX_RETRIES``); since outcomes only come back when a task ends, a trial is
never lost and never reported twice. A task that still fails fails its trials (the contract's
failed outcome). Ray is an optional extra: ``pip install 'lrkit[ray]'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from lrkit.errors import LrkitValueError
from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup, TrialJob, failed_outcome
from lrkit.sweep.stacks import make_stacks
from lrkit.sweep.trials import run_job, run_stack
from lrkit.training.records import TrialOutcome

INSTALL_HINT = "pip install 'lrkit[ray]'"
MAX_RETRIES = 3
"""Runs of a task after its worker died (Ray's retries on system failures)."""

Finished = list[tuple[Any, TrialOutcome]]


def require_ray() -> Any:
    """The ``ray`` module, or the error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise LrkitValueError(
            f"the ray engine needs Ray: {INSTALL_HINT}",
            cli_message=f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}",
        ) from None
    return ray


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
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        # Local workers import the user's modules (--model pkg:factory) as the driver does.
        paths = [p for p in sys.path if p] + [os.getcwd()]
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}},
        )
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


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
