"""How the races of ``advise_batch_size`` are judged, by mode (torch-free: it reads the races'
results).

- target: in each race, the candidate that first reached the target on its validation
  curve (wherever the race left it: one left behind at a sixth of the budget may have been
  there first), its epoch times the steps per epoch and the measured step time; the soonest
  batch size wins, with that candidate's lr (as raced: the lr that reached the target is
  measured at that horizon, so no horizon correction applies). The race's winner at half the
  budget is the best value there, which is not the objective. Where no race reached it,
  the candidates that ran to their race's end with a last value within ``NEAR_TARGET``
  standard errors of the target are projected by the trend of their curves
  (``batchsize.crossing``, at most to the budget's epochs), and the soonest projection
  stands, marked as projected, in place of the model's untested choice. A measured crossing
  always outranks a projection, and a curve far from the target is not projected: on the
  bundled 6,000-image sample the trend of batch 256's curve, at 0.84 after 2 epochs and
  still steep, projected 0.92 by 2.7 epochs, which three seeds never reached in 4. Where
  nothing is projected either, the model's choice stands with its race's advice, and the
  advice says so.
- time: each race's budget is the epochs that ``seconds`` of training allow at its measured
  step time; the best value where the races decide (half the budget) wins; where a raced
  size is within noise of it the model's choice is kept.
- epochs: every race has the same epochs; the best value wins, and of those within noise of
  it the largest batch (the same examples in less wall time).
"""

from __future__ import annotations

import math
from dataclasses import replace

from lrkit.advise.result import Advice, RacedCandidate
from lrkit.batchsize.crossing import first_reached, projected_crossing
from lrkit.batchsize.result import RacedBatch
from lrkit.batchsize.settings import BatchSettings

NEAR_TARGET = 2.0
"""A curve is projected only if its last value is within this many of its standard errors
of the target (a trend read far from the target overshoots: see the module's docstring)."""


def read_race(
    size: int,
    epochs: float,
    per_epoch: int,
    found: Advice,
    step_seconds: float,
    target: float | None,
    higher: bool,
) -> RacedBatch:
    """The race at batch ``size`` (``epochs`` its budget, ``per_epoch`` steps an epoch,
    ``found`` its advice): for a ``target``, with the lr that reached it first (``soonest``),
    the epoch it did and that in seconds of training at ``step_seconds`` a step; else, and
    where none reached it, with the race's advised lr."""
    lr, reached, reached_at = found.lr, None, None
    if target is not None:
        reaching = soonest(found.candidates, target, higher)
        if reaching is not None:
            lr, reached = reaching
            reached_at = reached * per_epoch * step_seconds
    return RacedBatch(size, epochs, per_epoch, found, lr, reached, reached_at)


def soonest(
    candidates: tuple[RacedCandidate, ...], target: float, higher: bool
) -> tuple[float, float] | None:
    """The lr that reached ``target`` first on its curve, and the epoch it did (the smaller
    lr on a tie); None where none did."""
    reached = [
        (epoch, c.lr)
        for c in candidates
        if c.status == "done" and (epoch := first_reached(c.curve, target, higher)) is not None
    ]
    if not reached:
        return None
    epoch, lr = min(reached)
    return lr, epoch


def project(
    race: RacedBatch, target: float, higher: bool, seconds_per_step: dict[int, float]
) -> RacedBatch:
    """``race`` with its soonest projected crossing (``soonest_projected``), if any."""
    found = soonest_projected(race.advice.candidates, target, higher, race.epochs)
    if found is None:
        return race
    lr, epoch = found
    seconds = epoch * race.steps_per_epoch * seconds_per_step[race.batch_size]
    return replace(race, lr=lr, epochs_to_target=epoch, seconds_to_target=seconds, projected=True)


def soonest_projected(
    candidates: tuple[RacedCandidate, ...], target: float, higher: bool, limit: float
) -> tuple[float, float] | None:
    """Of the candidates that ran to the race's end within ``NEAR_TARGET`` standard errors
    of ``target`` there (the race could not tell them from reaching it), the lr whose curve's
    trend reaches ``target`` first (``crossing.projected_crossing``, within ``limit``
    epochs), and that epoch (the smaller lr on a tie); None where none is projected to."""
    done = [c for c in candidates if c.status == "done" and c.curve]
    if not done:
        return None
    end = max(c.curve[-1][0] for c in done)
    projected = [
        (epoch, c.lr)
        for c in done
        if c.curve[-1][0] >= end
        and abs(c.value - target) <= NEAR_TARGET * c.value_std
        and (epoch := projected_crossing(c.curve, target, higher, limit)) is not None
    ]
    if not projected:
        return None
    epoch, lr = min(projected)
    return lr, epoch


def decide(
    settings: BatchSettings, metric: str, predicted: int, races: list[RacedBatch]
) -> tuple[int, str]:
    """The batch size the races' outcomes choose, and why, in one sentence (see the module's
    docstring)."""
    if settings.mode == "target":
        return _soonest_to_target(settings, metric, predicted, races)
    higher = metric == "accuracy"
    best = max(races, key=lambda r: r.value if higher else -r.value)
    tied = [r for r in races if r is best or _within(r, best)]
    if settings.mode == "epochs":
        return _largest_of_the_best(settings, predicted, best, tied)
    return _best_in_the_time(settings, predicted, best, tied)


def _within(a: RacedBatch, b: RacedBatch) -> bool:
    spread = math.hypot(a.value_std, b.value_std)
    return math.isfinite(spread) and abs(a.value - b.value) <= 2 * spread


def _soonest_to_target(
    settings: BatchSettings, metric: str, predicted: int, races: list[RacedBatch]
) -> tuple[int, str]:
    """Mode target: the size that reached the target soonest (measured, else projected);
    where none did, the model's choice (or the raced size nearest it), untested."""
    unit = "accuracy" if metric == "accuracy" else "loss"
    reached = [r for r in races if r.seconds_to_target is not None]
    if not reached:
        half = max(r.advice.decided_at for r in races)
        # The model's choice, or the raced size nearest it where its race had no finisher.
        size = min(races, key=lambda r: abs(math.log(r.batch_size / predicted))).batch_size
        whose = "the noise-scale model's choice"
        if size != predicted:
            whose = f"the raced size nearest {whose} ({predicted})"
        return size, (
            f"no raced batch size reached validation {unit} {settings.target:g} within "
            f"{half:g} epochs, so batch size {size} is {whose}, untested against the "
            f"target: give more --epochs"
        )
    first = min(reached, key=lambda r: r.seconds_to_target or math.inf)
    how = (
        f"is projected to reach validation {unit} {settings.target:g} soonest among those "
        f"raced ({first.seconds_to_target:.3g} s of training, {first.epochs_to_target:.3g} "
        f"epochs, from its curve's trend past the race's {first.advice.decided_at:.3g} "
        f"epochs: no raced size reached it, so this is untested; more --epochs would "
        f"measure it)"
        if first.projected
        else f"reached validation {unit} {settings.target:g} soonest among those raced "
        f"({first.seconds_to_target:.3g} s of training, {first.epochs_to_target:.3g} "
        f"epochs)"
    )
    return first.batch_size, (
        f"batch size {first.batch_size} at lr {first.lr:.4g} {how}; the noise-scale "
        f"model predicted {predicted}"
    )


def _largest_of_the_best(
    settings: BatchSettings, predicted: int, best: RacedBatch, tied: list[RacedBatch]
) -> tuple[int, str]:
    """Mode epochs: of the sizes within noise of the best, the largest."""
    pick = max(tied, key=lambda r: r.batch_size)
    why = (
        f"batch size {pick.batch_size} did best in {settings.race.epochs:g} epochs"
        if pick is best
        else f"batch size {pick.batch_size} was within noise of the best "
        f"({best.batch_size}) in {settings.race.epochs:g} epochs, with the same examples in "
        f"less time"
    )
    return pick.batch_size, f"{why}; the noise-scale model predicted {predicted}"


def _best_in_the_time(
    settings: BatchSettings, predicted: int, best: RacedBatch, tied: list[RacedBatch]
) -> tuple[int, str]:
    """Mode time: the best, unless the model's choice is within noise of it."""
    model_pick = next((r for r in tied if r.batch_size == predicted), None)
    pick = model_pick or best
    budget = f"{settings.time:g} s of training"
    why = (
        f"batch size {pick.batch_size} did best in {budget}"
        if pick is best
        else f"batch size {pick.batch_size}, the noise-scale model's choice, was within noise "
        f"of the best ({best.batch_size}) in {budget}"
    )
    return pick.batch_size, why
