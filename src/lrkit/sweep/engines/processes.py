"""Worker processes for the local engines: units of work (a stack, or one trial) run in
``workers`` forked processes, one thread each, every report sent back to the parent, which
alone hears them (and so stays the only writer of a store).

A small network's step on a CPU is mostly per-operation overhead, which a second thread does
not shorten but a second process does. Workers take the next unit as they finish one, so the
largest units should come first. A worker that dies raises ``RuntimeError`` in the parent.
Workers end with their parent however it ends: stopped (SIGTERM) when it leaves ``run_units``
by an exception (Ctrl-C included), and killed by the kernel when it dies, even by SIGKILL
(Linux: ``PR_SET_PDEATHSIG``; elsewhere a worker notices at its next report). This module is
the engines' plumbing, not an engine.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup

Message = tuple[Any, ...]
"""("start", keys) | ("check", key, point, progress) | ("end", key, outcome) |
("failed", text) | ("exit",)"""
Send = Callable[[Message], None]
Unit = Callable[[TrainingSetup, Send], None]
"""Trains some trials of ``setup`` and reports them through ``send``."""


def default_workers(device: torch.device) -> int:
    """One process per usable CPU core; one process on a GPU or where fork is missing."""
    if device.type != "cpu" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def deliver(message: Message, events: EngineEvents) -> None:
    """Hand one report to the caller's callbacks."""
    kind = message[0]
    if kind == "start" and events.on_start is not None:
        events.on_start(message[1])
    elif kind == "check" and events.on_check is not None:
        events.on_check(message[1], message[2], message[3])
    elif kind == "end":
        events.on_done(message[1], message[2])


def run_units(
    units: Sequence[Unit], setup: TrainingSetup, workers: int, events: EngineEvents
) -> None:
    """Every unit, in this process (``workers`` 1, or one unit) or in forked workers."""
    workers = min(workers, len(units))
    if workers <= 1:
        for unit in units:
            unit(setup, lambda message: deliver(message, events))
        return
    context = multiprocessing.get_context("fork")
    next_unit: Any = context.Value("i", 0)
    results: Any = context.Queue()
    threads = max(1, torch.get_num_threads() // workers)
    parent = os.getpid()
    processes = [
        context.Process(
            target=_worker,
            args=(units, setup, next_unit, results, parent, threads),
            daemon=True,
        )
        for _ in range(workers)
    ]
    started: list[Any] = []
    running = len(processes)
    try:
        with _stop_signals_held():
            for process in processes:
                process.start()
                started.append(process)
        while running:
            try:
                message = pickle.loads(results.get(timeout=1.0))
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"a worker process died (exit code {dead[0].exitcode}); the trials "
                        "reported so far are final, run again to go on with the rest"
                    ) from None
                continue
            if message[0] == "exit":
                running -= 1
            elif message[0] == "failed":
                raise RuntimeError(f"a worker process failed:\n{message[1]}")
            else:
                deliver(message, events)
    finally:
        for process in started:
            if process.is_alive():
                process.terminate()
            process.join()


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait while workers are forked, and arrive when the block ends: a
    handler that raises (the CLI's KeyboardInterrupt) would otherwise raise inside Python's
    at-fork hooks, which swallow it ("Exception ignored in ..."), and the run would go on.
    A forked worker starts with them held too, and lets them through (``_end_with``)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _worker(
    units: Sequence[Unit],
    setup: TrainingSetup,
    next_unit: Any,
    results: Any,
    parent: int,
    threads: int,
) -> None:
    _end_with(parent)
    # Set the thread count first: a forked child must not use the parent's OpenMP pool as it
    # was, and for small steps processes, not threads, add throughput (one thread each when
    # there is a worker per core).
    torch.set_num_threads(threads)

    def send(message: Message) -> None:
        if os.getppid() != parent:  # the parent was killed: stop, its store holds the rest
            os._exit(1)
        # Pickled here by value: the queue would share tensors (a checkpoint's) through file
        # descriptors that die with this process.
        results.put(pickle.dumps(message))

    try:
        while True:
            with next_unit.get_lock():
                index = next_unit.value
                next_unit.value += 1
            if index >= len(units):
                break
            units[index](setup, send)
    except KeyboardInterrupt:
        os._exit(130)  # Ctrl-C reached the whole process group: the parent reports it
    except BaseException:
        send(("failed", traceback.format_exc()))
    send(("exit",))


PR_SET_PDEATHSIG = 1
"""prctl(2): the signal the kernel sends this process when its parent thread ends."""


def _end_with(parent: int) -> None:
    """Make this worker end when its parent does: SIGTERM (how the parent stops it) back to
    its default action, whatever handler the fork inherited, and no longer held; on Linux,
    SIGKILL from the kernel when the parent dies; and exit now if the parent died before
    that was set."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl to call: the check at each report stays
            pass
    if os.getppid() != parent:
        os._exit(1)
