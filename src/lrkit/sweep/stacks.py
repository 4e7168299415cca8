"""Grouping trials into stacks for the vectorized engine (locally or as Ray tasks).

A stack is a group of trials that can train in lockstep as one stacked network
(``training.vectorized``): the same batch size, length, checks and batch-size schedule, and
the same starting point. The largest stacks go first, so that the last to finish is small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lrkit.sweep.engines.contract import TrialJob

MAX_STACK = 64
"""Trials per stack at most (K = 64 at batch 128 takes well under 2 GiB for mnist-mlp)."""

OVERHEAD_US, PER_EXAMPLE_US = 300.0, 4.4
"""Rough cost of a step of a stack on one CPU thread (mnist-mlp): fixed plus per trial-example;
only used to hand out the largest stacks first."""


@dataclass(frozen=True)
class Stack:
    """Jobs that train together."""

    jobs: tuple[TrialJob, ...]

    @property
    def batch_size(self) -> int:
        return self.jobs[0].plan.batch_size

    def cost(self, n_train: int) -> float:
        plan = self.jobs[0].plan
        done = plan.start.position.progress if plan.start is not None else 0.0
        steps = (plan.epochs - done) * math.ceil(n_train / self.batch_size)
        return steps * (OVERHEAD_US + PER_EXAMPLE_US * len(self.jobs) * self.batch_size)


def stack_shape(job: TrialJob) -> tuple[object, ...]:
    """Jobs of equal shape can share a stack."""
    plan = job.plan
    start = plan.start.position if plan.start is not None else None
    schedule = id(plan.batch_size_schedule) if plan.batch_size_schedule is not None else None
    return (plan.batch_size, plan.epochs, plan.eval_every, schedule, start)


def make_stacks(jobs: Sequence[TrialJob], workers: int, n_train: int) -> list[Stack]:
    """Jobs grouped by shape (at most ``MAX_STACK`` a stack), split further while there are
    fewer stacks than workers, largest first."""
    by_shape: dict[tuple[object, ...], list[TrialJob]] = {}
    for job in jobs:
        by_shape.setdefault(stack_shape(job), []).append(job)
    stacks = [
        Stack(tuple(group[i : i + MAX_STACK]))
        for group in by_shape.values()
        for i in range(0, len(group), MAX_STACK)
    ]
    while len(stacks) < workers:
        splittable = [s for s in stacks if len(s.jobs) > 1]
        if not splittable:
            break
        largest = max(splittable, key=lambda s: s.cost(n_train))
        half = len(largest.jobs) // 2
        stacks.remove(largest)
        stacks += [Stack(largest.jobs[:half]), Stack(largest.jobs[half:])]
    return sorted(stacks, key=lambda s: -s.cost(n_train))
