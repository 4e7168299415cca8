"""The vectorized sweep engine: the grid's trials in stacks, one stack per batch size, run by
one worker process per CPU core.

A stack is every trial that shares a batch size (up to ``MAX_STACK``); its trials train in
lockstep as one stacked network (``training.vectorized``). A small network's step on a CPU is
mostly per-operation overhead, which a second thread does not shorten but a second process
does, so on a CPU the stacks go to ``workers`` processes (forked, one thread each). The parent
process stays the only writer of the store: each trial is committed when its stack reports it
finished (a diverged trial as soon as it is found), so a crash loses no finished trial.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lrkit.data.tensors import TensorData
from lrkit.sweep.definition import TrialKey
from lrkit.training.loop import CurvePoint, TrialOutcome
from lrkit.training.vectorized.loop import StackedRun, StackedTrial
from lrkit.workload import Workload

MAX_STACK = 64
"""Trials per stack at most (K = 64 at batch 128 takes well under 2 GiB for mnist-mlp)."""

OVERHEAD_US, PER_EXAMPLE_US = 300.0, 4.4
"""Rough cost of a step of a stack on one CPU thread (mnist-mlp): fixed plus per trial-example;
only used to hand out the largest stacks first."""


@dataclass(frozen=True)
class Stack:
    batch_size: int
    keys: tuple[TrialKey, ...]

    def cost(self, n_train: int, epochs: float) -> float:
        steps = epochs * math.ceil(n_train / self.batch_size)
        return steps * (OVERHEAD_US + PER_EXAMPLE_US * len(self.keys) * self.batch_size)


def make_stacks(keys: list[TrialKey], workers: int, n_train: int, epochs: float) -> list[Stack]:
    """Trials grouped by batch size (at most ``MAX_STACK`` a stack), split further while
    there are fewer stacks than workers, largest first."""
    by_size: dict[int, list[TrialKey]] = {}
    for key in keys:
        by_size.setdefault(key.batch_size, []).append(key)
    stacks = [
        Stack(size, tuple(group[i : i + MAX_STACK]))
        for size, group in by_size.items()
        for i in range(0, len(group), MAX_STACK)
    ]
    while len(stacks) < workers:
        splittable = [s for s in stacks if len(s.keys) > 1]
        if not splittable:
            break
        largest = max(splittable, key=lambda s: s.cost(n_train, epochs))
        half = len(largest.keys) // 2
        stacks.remove(largest)
        stacks += [
            Stack(largest.batch_size, largest.keys[:half]),
            Stack(largest.batch_size, largest.keys[half:]),
        ]
    return sorted(stacks, key=lambda s: -s.cost(n_train, epochs))


def default_workers(device: torch.device) -> int:
    """One process per usable CPU core; one process on a GPU or where fork is missing."""
    if device.type != "cpu" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


StackTrials = Callable[[Stack], tuple[list[Any], list[StackedTrial]]]
"""Builds a stack's models (on the device) and trial settings."""

Message = tuple[Any, ...]
"""("start", keys) | ("check", key, point, progress) | ("end", key, outcome) |
("failed", text) | ("exit",)"""


def run_stack(
    stack: Stack,
    build: StackTrials,
    work: Workload,
    data: tuple[TensorData, TensorData, TensorData | None],
    send: Callable[[Message], None],
) -> None:
    """Train one stack, reporting through ``send``."""
    models, trials = build(stack)
    send(("start", stack.keys))
    keys = stack.keys
    run = StackedRun(models, trials, work.loss_fn, *data)

    def on_check(index: int, point: CurvePoint, progress: float) -> None:
        send(("check", keys[index], point, progress))

    def on_end(index: int, outcome: TrialOutcome) -> None:
        send(("end", keys[index], outcome))

    run.run(on_check, on_end)


def run_stacks(
    stacks: list[Stack],
    build: StackTrials,
    work: Workload,
    data: tuple[TensorData, TensorData, TensorData | None],
    workers: int,
    receive: Callable[[Message], None],
) -> None:
    """Run every stack, in this process (``workers == 1``) or in forked workers; every
    message reaches ``receive`` in this process."""
    workers = min(workers, len(stacks))
    if workers <= 1:
        for stack in stacks:
            run_stack(stack, build, work, data, receive)
        return
    context = multiprocessing.get_context("fork")
    next_stack: Any = context.Value("i", 0)
    results: Any = context.Queue()
    threads = max(1, torch.get_num_threads() // workers)
    parent = os.getpid()
    processes = [
        context.Process(
            target=_worker,
            args=(stacks, build, work, data, next_stack, results, parent, threads),
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
                        f"a sweep worker died (exit code {dead[0].exitcode}); "
                        "finished trials are in the store, run the sweep again to resume"
                    ) from None
                continue
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
    build: StackTrials,
    work: Workload,
    data: tuple[TensorData, TensorData, TensorData | None],
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
        results.put(message)

    try:
        while True:
            with next_stack.get_lock():
                index = next_stack.value
                next_stack.value += 1
            if index >= len(stacks):
                break
            run_stack(stacks[index], build, work, data, send)
    except BaseException:
        results.put(("failed", traceback.format_exc()))
    results.put(("exit",))
