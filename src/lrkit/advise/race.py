"""The race: candidates trained through an engine (``sweep.engines``), rung after rung of the
plan (``advise.plan``), each going on from its own checkpoint, the better ones going on.

Every candidate starts from the same initial weights and reads the same batches (one seed for
all), so they differ only in their learning rate. At each rung the survivors are ranked by
their validation metric there; a candidate that diverged or failed ranks last.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lrkit.advise.candidates import Candidate
from lrkit.advise.plan import Rung
from lrkit.advise.result import RacedCandidate
from lrkit.sweep.definition import TrialKey
from lrkit.sweep.engines.contract import Engine, EngineEvents, TrainingSetup, TrialJob
from lrkit.training.records import Checkpoint, CurvePoint, TrialOutcome, TrialPlan

OnRaceCheck = Callable[[float, CurvePoint, float], None]
"""Progress: (the candidate's lr, the point, epochs it has trained)."""


@dataclass(frozen=True)
class RaceSetup:
    """What the race needs besides the candidates and its plan."""

    setup: TrainingSetup
    engine: Engine
    batch_size: int
    metric: str
    optimizer: str
    momentum: float
    weight_decay: float
    seed: int


def metric_of(point: CurvePoint, metric: str) -> float:
    """The validation metric a check measured."""
    return point.val_accuracy if metric == "accuracy" else point.val_loss


def worst(metric: str) -> float:
    return 0.0 if metric == "accuracy" else math.inf


def binomial_error(accuracy: float, examples: int) -> float:
    """The standard error of an accuracy measured on ``examples`` examples."""
    if not math.isfinite(accuracy) or examples <= 0:
        return math.nan
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / examples)


def jitter(values: Sequence[float]) -> float:
    """The noise of a curve from check to check: the standard deviation of the differences
    between successive checks over sqrt 2 (the noise of each, where the trend between two
    checks is small against it); nan with fewer than three checks."""
    steps = [b - a for a, b in itertools.pairwise(values)]
    if len(steps) < 2 or not all(math.isfinite(s) for s in steps):
        return math.nan
    return statistics.stdev(steps) / math.sqrt(2)


def race(
    candidates: Sequence[Candidate],
    plan: Sequence[Rung],
    race_setup: RaceSetup,
    on_check: OnRaceCheck | None = None,
) -> tuple[list[RacedCandidate], list[float]]:
    """Run ``plan`` over ``candidates``: every candidate as it ended (in increasing lr), and
    the ranking of the last rung, best first."""
    rs = race_setup
    alive = [c.lr for c in candidates]
    sources = {c.lr: c.sources for c in candidates}
    last: dict[float, TrialOutcome] = {}
    checkpoints: dict[float, Checkpoint | None] = dict.fromkeys(alive)
    start = 0.0
    ranked = alive
    for index, rung in enumerate(plan):
        final = index == len(plan) - 1
        outcomes = _run_rung(alive, rung, start, checkpoints, rs, on_check, keep=not final)
        last.update(outcomes)
        ranked = sorted(alive, key=lambda lr: _rank(_measured(outcomes[lr], rs.metric), rs))
        alive = ranked[: rung.keep]
        for lr in alive:
            checkpoints[lr] = outcomes[lr].checkpoint
        start = rung.epochs
    raced = [_raced(lr, sources[lr], last[lr], rs) for lr in sorted(last)]
    return raced, ranked


def _run_rung(
    alive: Sequence[float],
    rung: Rung,
    start: float,
    checkpoints: dict[float, Checkpoint | None],
    rs: RaceSetup,
    on_check: OnRaceCheck | None,
    keep: bool,
) -> dict[float, TrialOutcome]:
    jobs = [
        TrialJob(
            TrialKey(rs.batch_size, lr, 0),
            TrialPlan(
                lr=lr,
                batch_size=rs.batch_size,
                epochs=rung.epochs,
                eval_every=rung.eval_every(start),
                seed=rs.seed,
                start=checkpoints[lr],
                keep_checkpoint=keep,
            ),
            rs.optimizer,
            rs.momentum if rs.optimizer == "momentum" else 0.0,
            rs.weight_decay,
        )
        for lr in alive
    ]
    outcomes: dict[float, TrialOutcome] = {}

    def on_done(key: TrialKey, outcome: TrialOutcome) -> None:
        outcomes[key.lr] = outcome

    def report(key: TrialKey, point: CurvePoint, progress: float) -> None:
        if on_check is not None:
            on_check(key.lr, point, progress)

    rs.engine.run(jobs, rs.setup, EngineEvents(on_done, None, report))
    return outcomes


def _measured(outcome: TrialOutcome, metric: str) -> float:
    """The value a run reached (the worst where it diverged or failed)."""
    if outcome.status != "done" or len(outcome.points) < 2:
        return worst(metric)
    value = metric_of(outcome.points[-1], metric)
    return value if math.isfinite(value) else worst(metric)


def _rank(value: float, rs: RaceSetup) -> float:
    """Sort key: best first."""
    return -value if rs.metric == "accuracy" else value


def _raced(
    lr: float, sources: tuple[str, ...], outcome: TrialOutcome, rs: RaceSetup
) -> RacedCandidate:
    points = outcome.points[1:]  # the check before training is no result of the rate
    values = [metric_of(p, rs.metric) for p in points]
    value = _measured(outcome, rs.metric)
    noise = jitter(values[-4:])
    if rs.metric == "accuracy":
        error = binomial_error(value, len(rs.setup.val))
        std = math.hypot(error, noise) if math.isfinite(noise) else error
    else:
        std = noise
    return RacedCandidate(
        lr=lr,
        sources=sources,
        value=value,
        value_std=std if outcome.status == "done" else math.nan,
        epochs_run=outcome.points[-1].epoch if outcome.points else 0.0,
        status=outcome.status,
        curve=tuple((p.epoch, v) for p, v in zip(points, values, strict=True)),
        error=outcome.error,
    )
