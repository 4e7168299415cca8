"""The vectorized engine: the trials in stacks (``sweep.stacks``: one batch size, one shape),
each stack trained in lockstep as one stacked network (``training.vectorized``), by one worker
process per CPU core.

A small network's step on a CPU is mostly per-operation overhead, which a second thread does
not shorten but a second process does, so on a CPU the stacks go to ``workers`` processes
(forked, one thread each). Every report comes back to the parent, which alone calls the
caller's callbacks (so it stays the only writer of a store): each trial as its stack reports
it finished, a diverged one as soon as it is found. A worker that dies raises
``RuntimeError``; workers exit when their parent is killed.

Only plain and momentum SGD stack (``STACKABLE_OPTIMIZERS``); the caller checks the model
(``training.vectorized.network.check_stackable``) before choosing this engine.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup, TrialJob
from lrkit.sweep.stacks import Stack, make_stacks
from lrkit.sweep.trials import run_stack

STACKABLE_OPTIMIZERS = ("sgd", "momentum")

Message = tuple[Any, ...]
"""("start", keys) | ("check", key, point, progress) | ("end", key, outcome) |
("failed", text) | ("exit",)"""


def default_workers(device: torch.device) -> int:
    """One process per usable CPU core; one process on a GPU or where fork is missing."""
    if device.type != "cpu" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class StackedEngine:
    """Stacks of trials, in this process (``workers == 1``) or in forked workers."""

    name = "vectorized"

    def __init__(self, workers: int = 1):
        self.workers = workers

    def run(self, jobs: Sequence[TrialJob], setup: TrainingSetup, events: EngineEvents) -> None:
        for job in jobs:
            if job.optimizer not in STACKABLE_OPTIMIZERS:
                raise ValueError(f"the vectorized engine cannot train {job.optimizer}")
        stacks = make_stacks(jobs, self.workers, len(setup.train))
        workers = min(self.workers, len(stacks))
        if workers <= 1:
            for stack in stacks:
                _train(stack, setup, lambda message: _deliver(message, events))
            return
        _run_in_workers(stacks, setup, workers, lambda message: _deliver(message, events))


def _train(stack: Stack, setup: TrainingSetup, send: Callable[[Message], None]) -> None:
    """Train one stack, reporting through ``send``."""
    send(("start", tuple(job.key for job in stack.jobs)))
    run_stack(
        stack.jobs,
        setup,
        lambda key, outcome: send(("end", key, outcome)),
        lambda key, point, progress: send(("check", key, point, progress)),
    )


def _deliver(message: Message, events: EngineEvents) -> None:
    kind = message[0]
    if kind == "start" and events.on_start is not None:
        events.on_start(message[1])
    elif kind == "check" and events.on_check is not None:
        events.on_check(message[1], message[2], message[3])
    elif kind == "end":
        events.on_done(message[1], message[2])


def _run_in_workers(
    stacks: list[Stack],
    setup: TrainingSetup,
    workers: int,
    receive: Callable[[Message], None],
) -> None:
    """Every stack, in ``workers`` forked processes taking the next stack as they finish one;
    every message reaches ``receive`` in this process."""
    context = multiprocessing.get_context("fork")
    next_stack: Any = context.Value("i", 0)
    results: Any = context.Queue()
    threads = max(1, torch.get_num_threads() // workers)
    parent = os.getpid()
    processes = [
        context.Process(
            target=_worker,
            args=(stacks, setup, next_stack, results, parent, threads),
            daemon=True,
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    running = len(processes)
    try:
        while running:
            try:
                message = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"a sweep worker died (exit code {dead[0].exitcode}); the trials "
                        "reported so far are final, run the sweep again to resume"
                    ) from None
                continue
            message = pickle.loads(message)
            if message[0] == "exit":
                running -= 1
            elif message[0] == "failed":
                raise RuntimeError(f"a sweep worker failed:\n{message[1]}")
            else:
                receive(message)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _worker(
    stacks: list[Stack],
    setup: TrainingSetup,
    next_stack: Any,
    results: Any,
    parent: int,
    threads: int,
) -> None:
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
            with next_stack.get_lock():
                index = next_stack.value
                next_stack.value += 1
            if index >= len(stacks):
                break
            _train(stacks[index], setup, send)
    except KeyboardInterrupt:
        os._exit(130)  # Ctrl-C reached the whole process group: the parent reports it
    except BaseException:
        send(("failed", traceback.format_exc()))
    send(("exit",))
