"""The race: candidates trained through an engine (``sweep.engines``), rung after rung of the
plan (``advise.plan``), each going on from its own checkpoint, the better forecasts going on.

Every candidate starts from the same initial weights and reads the same batches (one seed for
all), so they differ only in their learning rate. At a rung the survivors are ranked by where
their curves are headed at the full budget (``advise.predict.forecast``); at the last, by
their measured value. A candidate that diverged or failed ranks last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lrkit.advise.candidates import Candidate
from lrkit.advise.plan import Rung
from lrkit.advise.predict import forecast
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
    epochs: float
    """The budget: forecasts are for this epoch."""
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


def race(
    candidates: Sequence[Candidate],
    plan: Sequence[Rung],
    race_setup: RaceSetup,
    on_check: OnRaceCheck | None = None,
) -> list[RacedCandidate]:
    """Run ``plan`` over ``candidates``; every candidate as it ended, in increasing lr."""
    rs = race_setup
    alive = [c.lr for c in candidates]
    sources = {c.lr: c.sources for c in candidates}
    last: dict[float, TrialOutcome] = {}
    checkpoints: dict[float, Checkpoint | None] = dict.fromkeys(alive)
    forecasts: dict[float, float] = {}
    start = 0.0
    for rung in plan:
        outcomes = _run_rung(alive, rung, start, checkpoints, rs, on_check)
        last.update(outcomes)
        if rung.keep == 0:
            for lr in alive:
                forecasts[lr] = _measured(outcomes[lr], rs.metric)
            break
        for lr in alive:
            forecasts[lr] = _forecast(outcomes[lr], rs)
        ranked = sorted(alive, key=lambda lr: _rank(forecasts[lr], rs.metric))
        alive = ranked[: rung.keep]
        for lr in alive:
            checkpoints[lr] = outcomes[lr].checkpoint
        start = rung.epochs
    return [_raced(lr, sources[lr], last[lr], forecasts[lr], rs) for lr in sorted(last)]


def _run_rung(
    alive: Sequence[float],
    rung: Rung,
    start: float,
    checkpoints: dict[float, Checkpoint | None],
    rs: RaceSetup,
    on_check: OnRaceCheck | None,
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
                keep_checkpoint=rung.keep > 0,
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


def _values(outcome: TrialOutcome, metric: str) -> tuple[list[float], list[float]]:
    points = outcome.points[1:]  # the check before training has no epoch to fit
    return [p.epoch for p in points], [metric_of(p, metric) for p in points]


def _measured(outcome: TrialOutcome, metric: str) -> float:
    if outcome.status != "done" or len(outcome.points) < 2:
        return worst(metric)
    value = metric_of(outcome.points[-1], metric)
    return value if math.isfinite(value) else worst(metric)


def _forecast(outcome: TrialOutcome, rs: RaceSetup) -> float:
    if outcome.status != "done":
        return worst(rs.metric)
    epochs, values = _values(outcome, rs.metric)
    found = forecast(epochs, values, rs.epochs, rs.metric).value
    return found if math.isfinite(found) else worst(rs.metric)


def _rank(value: float, metric: str) -> float:
    """Sort key: best first."""
    return -value if metric == "accuracy" else value


def _raced(
    lr: float, sources: tuple[str, ...], outcome: TrialOutcome, ranked_by: float, rs: RaceSetup
) -> RacedCandidate:
    epochs, values = _values(outcome, rs.metric)
    value = _measured(outcome, rs.metric)
    spread = forecast(epochs, values, rs.epochs, rs.metric).spread
    if rs.metric == "accuracy":
        noise = binomial_error(value, len(rs.setup.val))
        std = math.hypot(noise, spread) if math.isfinite(spread) else noise
    else:
        std = spread
    if outcome.status != "done":
        std = math.nan
    return RacedCandidate(
        lr=lr,
        sources=sources,
        value=value,
        value_std=std,
        forecast=ranked_by,
        epochs_run=outcome.points[-1].epoch if outcome.points else 0.0,
        status=outcome.status,
        curve=tuple(zip(epochs, values, strict=True)),
        error=outcome.error,
    )
