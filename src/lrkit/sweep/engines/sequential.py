"""The sequential engine: one trial at a time on the plain loop, in this process. It takes
any model and optimizer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup, TrialJob
from lrkit.sweep.trials import run_job
from lrkit.training.records import CurvePoint


class SequentialEngine:
    """Runs the jobs in order, each reported as it ends."""

    name = "sequential"

    def run(self, jobs: Sequence[TrialJob], setup: TrainingSetup, events: EngineEvents) -> None:
        for job in jobs:
            if events.on_start is not None:
                events.on_start((job.key,))
            events.on_done(job.key, run_job(job, setup, _bind(events, job)))


def _bind(events: EngineEvents, job: TrialJob) -> Callable[[CurvePoint, float], None] | None:
    """The plain loop's check callback, reporting for ``job``."""
    report = events.on_check
    if report is None:
        return None
    return lambda point, progress: report(job.key, point, progress)
