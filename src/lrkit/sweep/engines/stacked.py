"""The vectorized engine: the trials in stacks (``sweep.stacks``: one batch size, one shape),
each stack trained in lockstep as one stacked network (``training.vectorized``), the stacks
spread over worker processes on a CPU (``engines.processes``), the largest first.

Each trial is reported as its stack finishes it (a diverged one as soon as it is found), in
the caller's process. Only plain and momentum SGD with no other arguments stack
(``TrialJob.stackable``); the caller checks the model
(``training.vectorized.network.check_stackable``) before choosing this engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup, TrialJob
from lrkit.sweep.engines.processes import Send, run_units
from lrkit.sweep.stacks import Stack, make_stacks
from lrkit.sweep.trials import run_stack


class StackedEngine:
    """Stacks of trials, in this process (``workers == 1``) or in forked workers."""

    name = "vectorized"

    def __init__(self, workers: int = 1):
        self.workers = workers

    def run(self, jobs: Sequence[TrialJob], setup: TrainingSetup, events: EngineEvents) -> None:
        for job in jobs:
            if not job.stackable:
                raise ValueError(f"the vectorized engine cannot train {job.optimizer}")
        stacks = make_stacks(jobs, self.workers, len(setup.train))
        run_units([partial(_train, stack) for stack in stacks], setup, self.workers, events)


def _train(stack: Stack, setup: TrainingSetup, send: Send) -> None:
    """Train one stack, reporting through ``send``."""
    send(("start", tuple(job.key for job in stack.jobs)))
    run_stack(
        stack.jobs,
        setup,
        lambda key, outcome: send(("end", key, outcome)),
        lambda key, point, progress: send(("check", key, point, progress)),
    )
