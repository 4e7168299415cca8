"""The sequential engine: each trial on the plain loop, one at a time in this process, or
with ``workers`` > 1, side by side in forked worker processes on a CPU
(``engines.processes``). It takes any model and optimizer."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup, TrialJob
from lrkit.sweep.engines.processes import Send, run_units
from lrkit.sweep.trials import run_job


class SequentialEngine:
    """Runs the jobs in order (or over ``workers`` processes), each reported as it ends."""

    name = "sequential"

    def __init__(self, workers: int = 1):
        self.workers = workers

    def run(self, jobs: Sequence[TrialJob], setup: TrainingSetup, events: EngineEvents) -> None:
        run_units([partial(_train, job) for job in jobs], setup, self.workers, events)


def _train(job: TrialJob, setup: TrainingSetup, send: Send) -> None:
    """Train one job on the plain loop, reporting through ``send``."""
    send(("start", (job.key,)))
    outcome = run_job(job, setup, lambda point, progress: send(("check", job.key, point, progress)))
    send(("end", job.key, outcome))
