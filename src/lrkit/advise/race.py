"""The race: candidates trained through an engine (``sweep.engines``), rung after rung of the
plan (``advise.plan``), each going on from its own checkpoint, the better ones going on.

Every candidate starts from the same initial weights and reads the same batches (one seed for
all), so they differ only in their learning rate. At each rung the survivors are ranked by
their validation metric there (equal accuracies by the validation loss); a candidate that
diverged or failed ranks last. The race's result ranks the candidates that finished first,
those that finished the furthest rung before the others: where every survivor of the last
rung diverged or failed, the winner is the best that finished an earlier one, never a run
that did not finish (``RaceFailed`` where none did).

A best that lies at an end of the candidates is no best: after the first rung, while the leader
is the largest candidate, or every candidate is within noise of the leader (none has learnt
what the others have not, as on a plateau that small rates do not leave: which of them leads is
noise), one ``EDGE_STEP`` times larger joins the rung, trained from the start like the others;
while the leader is the smallest, and clearly so, one that much smaller does (at most
``extensions`` of them, and never past a candidate that diverged). The range test cannot see a
plateau that only training escapes; the race can. Replayed on the benchmark's grid curves
(``bench/suggest_horizon.py``), with the best lr one to three grid steps outside the six
candidates, the race picks within noise in 0.81 of the tuning windows (0.15 without the rule),
0.59 held out (0.14) and 0.85 on the first fresh set (0.15); with the best inside it costs a
little (0.89 to 0.86 tuning, 0.69 to 0.62 held out), as a leader at the top at a sixth of the
budget can be short-horizon bias. Sending a flat rung down when its leader is the smallest
scored 0.85 on the tuning windows outside, but on a plateau which candidate leads is noise (it
sent the spiral problem's race down, away from the rates that leave the plateau), so a flat
rung goes up. On the second fresh set, run once after the rule was fixed, it helped outside
(0.10 to 0.45) and cost inside (0.66 to 0.53).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lrkit.advise.candidates import Candidate
from lrkit.advise.plan import Rung
from lrkit.advise.result import RacedCandidate
from lrkit.schedules.recipe import Recipe
from lrkit.sweep.definition import TrialKey
from lrkit.sweep.engines.contract import Engine, EngineEvents, TrainingSetup, TrialJob
from lrkit.training.optimizers import OptimizerSpec
from lrkit.training.records import Checkpoint, CurvePoint, TrialOutcome, TrialPlan

OnRaceCheck = Callable[[float, CurvePoint, float], None]
"""Progress: (the candidate's lr, the point, epochs it has trained)."""
EDGE_STEP = 2.0
"""The factor between an end of the candidates and the candidate added beyond it."""


@dataclass(frozen=True)
class RaceSetup:
    """What the race needs besides the candidates and its plan."""

    setup: TrainingSetup
    engine: Engine
    batch_size: int
    metric: str
    optimizer: OptimizerSpec
    seed: int
    recipe: Recipe = field(default_factory=Recipe)
    """Every candidate trains under it, its lr the recipe's peak."""
    steps: int = 0
    """The budget's steps: the recipe's length (0 for a constant lr only)."""
    accumulation_steps: int = 1
    """Micro-batches each batch trains in (``advise.micro``)."""

    def job(self, lr: float, plan: TrialPlan) -> TrialJob:
        """The trial of candidate ``lr`` under ``plan``, with the race's optimizer."""
        spec = self.optimizer
        return TrialJob(
            TrialKey(self.batch_size, lr, 0),
            plan,
            spec.name,
            spec.momentum if spec.name == "momentum" else 0.0,
            spec.weight_decay,
            spec.args,
            spec.factory,
        )

    def plan(
        self, lr: float, epochs: float, eval_every: float, start: Checkpoint | None, keep: bool
    ) -> TrialPlan:
        """Candidate ``lr`` trained to ``epochs`` in all under the recipe."""
        return TrialPlan(
            lr=lr,
            batch_size=self.batch_size,
            epochs=epochs,
            eval_every=eval_every,
            seed=self.seed,
            schedule=self.recipe.build(lr, self.steps),
            start=start,
            keep_checkpoint=keep,
            accumulation_steps=self.accumulation_steps,
        )


class RaceFailed(RuntimeError):
    """No candidate of the race finished: there is nothing to advise."""


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
    extensions: int = 0,
    keep_final: bool = False,
) -> tuple[list[RacedCandidate], list[float], dict[float, Checkpoint]]:
    """Run ``plan`` over ``candidates`` (and up to ``extensions`` more beyond their ends):
    every candidate as it ended (in increasing lr), all of them ranked, best first (see
    ``result_rank``), and, with ``keep_final``, the checkpoint where each survivor of the
    last rung ended (to train on from)."""
    rs = race_setup
    alive = [c.lr for c in candidates]
    sources = {c.lr: c.sources for c in candidates}
    last: dict[float, TrialOutcome] = {}
    checkpoints: dict[float, Checkpoint | None] = dict.fromkeys(alive)
    start = 0.0
    for index, rung in enumerate(plan):
        final = index == len(plan) - 1
        keep = keep_final or not final
        outcomes = _run_rung(alive, rung, start, checkpoints, rs, on_check, keep=keep)
        if index == 0:
            for lr, source in _extend(outcomes, rung, rs, on_check, extensions, keep):
                sources[lr] = (source,)
                alive.append(lr)
        last.update(outcomes)
        ranked = sorted(alive, key=lambda lr: _rank(outcomes[lr], rs))
        alive = ranked[: rung.keep]
        for lr in alive:
            checkpoints[lr] = outcomes[lr].checkpoint
        start = rung.epochs
    raced = [_raced(lr, sources[lr], last[lr], rs) for lr in sorted(last)]
    # ``outcomes`` holds the last rung's: its survivors' checkpoints, where asked for.
    kept = {
        lr: point
        for lr, outcome in outcomes.items()
        if keep_final and (point := outcome.checkpoint) is not None
    }
    return raced, sorted(last, key=lambda lr: result_rank(last[lr], rs)), kept


def _extend(
    outcomes: dict[float, TrialOutcome],
    rung: Rung,
    rs: RaceSetup,
    on_check: OnRaceCheck | None,
    extensions: int,
    keep: bool,
) -> list[tuple[float, str]]:
    """Add candidates beyond an end of the rung while the leader is there (see the module's
    docstring); ``outcomes`` gains theirs. The lrs added, with where they came from."""
    added: list[tuple[float, str]] = []
    while len(added) < extensions:
        values = {lr: _measured(o, rs.metric) for lr, o in outcomes.items()}
        lrs = sorted(values)
        leader = min(lrs, key=lambda lr: _rank(outcomes[lr], rs))
        noise = {lr: _noise(o, values[lr], rs) for lr, o in outcomes.items()}
        flat = len(lrs) > 1 and all(
            _within(values[leader], noise[leader], values[lr], noise[lr]) for lr in lrs
        )
        if (leader == lrs[-1] or flat) and outcomes[lrs[-1]].status == "done":
            new, source = lrs[-1] * EDGE_STEP, f"edge x{EDGE_STEP:g} above"
        elif leader == lrs[0] and not flat:
            new, source = lrs[0] / EDGE_STEP, f"edge /{EDGE_STEP:g} below"
        else:
            break
        outcomes.update(_run_rung([new], rung, 0.0, {new: None}, rs, on_check, keep=keep))
        added.append((new, source))
    return added


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
        rs.job(lr, rs.plan(lr, rung.epochs, rung.eval_every(start), checkpoints[lr], keep))
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


def _rank(outcome: TrialOutcome, rs: RaceSetup) -> tuple[float, float]:
    """Sort key, best first: the metric, then (for equal accuracies, as on a plateau where
    every candidate predicts the majority class) the validation loss."""
    value = _measured(outcome, rs.metric)
    if rs.metric != "accuracy":
        return value, 0.0
    return -value, _measured(outcome, "loss")


def result_rank(outcome: TrialOutcome, rs: RaceSetup) -> tuple[bool, float, float, float]:
    """Sort key of the race's result, best first: finished before diverged or failed, then
    the furthest trained (a later rung's before an earlier one's), then the metric there
    (``_rank``)."""
    reached = outcome.points[-1].epoch if outcome.points else 0.0
    return (outcome.status != "done", -reached, *_rank(outcome, rs))


def _within(a: float, noise_a: float, b: float, noise_b: float) -> bool:
    """Two values within twice their combined noise (False where a noise is unknown)."""
    spread = math.hypot(noise_a, noise_b)
    return math.isfinite(spread) and abs(a - b) <= 2 * spread


def _noise(outcome: TrialOutcome, value: float, rs: RaceSetup) -> float:
    """A run's value's noise: the binomial error of an accuracy on the validation set with the
    curve's jitter over its last checks (accuracy), or that jitter (loss); nan for a run that
    diverged or failed."""
    if outcome.status != "done":
        return math.nan
    noise = jitter([metric_of(p, rs.metric) for p in outcome.points[1:]][-4:])
    if rs.metric != "accuracy":
        return noise
    error = binomial_error(value, len(rs.setup.val))
    return math.hypot(error, noise) if math.isfinite(noise) else error


def _raced(
    lr: float, sources: tuple[str, ...], outcome: TrialOutcome, rs: RaceSetup
) -> RacedCandidate:
    points = outcome.points[1:]  # the check before training is no result of the rate
    values = [metric_of(p, rs.metric) for p in points]
    value = _measured(outcome, rs.metric)
    std = _noise(outcome, value, rs)
    return RacedCandidate(
        lr=lr,
        sources=sources,
        value=value,
        value_std=std,
        epochs_run=outcome.points[-1].epoch if outcome.points else 0.0,
        status=outcome.status,
        curve=tuple((p.epoch, v) for p, v in zip(points, values, strict=True)),
        error=outcome.error,
    )
