"""``advise_batch_size``: the batch size (and then the learning rate) that makes the most of
the user's budget on the user's machine.

    ceiling (``batchsize.ceiling``) -> candidate sizes (``min_batch_size`` doubling, up to
    the ceiling and an eighth of the training examples) -> their step times
    (``batchsize.throughput``) -> the noise scale (``lrkit.noise``; for a target, where the
    target is reached) -> the model's choice (``batchsize.model``) -> the learning-rate
    race (``lrkit.advise``) at it and its neighbours B/2 and 2B -> the measured outcome
    decides.

The noise scale is measured at ``NOISE_BATCH`` (the nearest candidate) training at half the
range test's suggestion there (a rate safely below the race's candidates): the smoothed
B_simple with its jackknife error. B_noise grows as the loss falls (McCandlish et al. 2018,
section 4: the critical batch size is a function of the loss to reach), so where it is read
matters. For a target, it is read where the noise run's validation curve first reaches the
target (checked ``NOISE_CHECKS_TO_TARGET`` times over half the budget, the races' horizon;
at its end where it never does): the loss the person asked for. Otherwise it is read after
``NOISE_EPOCHS`` (``NOISE_CHECKS`` measurements), an early reading that leans to smaller
batches; the race at the neighbours is there to overrule the model where it is wrong.

How the races are judged, by mode:

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
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from lrkit import validation as check
from lrkit.advise.driver import (
    ModelLike,
    advise,
    budget_range_test,
    check_race_data,
    model_device,
    model_factory,
    resolve_metric,
    tensor_data,
)
from lrkit.advise.plan import check_budget, least_budget
from lrkit.advise.race import OnRaceCheck, RaceFailed
from lrkit.advise.result import RacedCandidate
from lrkit.advise.settings import MAX_EPOCHS
from lrkit.batchsize.ceiling import find_ceiling
from lrkit.batchsize.crossing import first_reached, projected_crossing, reaches
from lrkit.batchsize.model import choose, neighbours, predict, steps_factor
from lrkit.batchsize.result import BatchAdvice, NoiseMeasurement, RacedBatch
from lrkit.batchsize.settings import BatchSettings
from lrkit.batchsize.throughput import measure_step_times
from lrkit.data.tensors import TensorData
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.noise.tracking import NoiseSettings, track_noise_scale
from lrkit.training.evaluate import LossFn
from lrkit.training.fit_check import check_model_fits
from lrkit.training.optimizers import make_optimizer

NOISE_BATCH = 32
NOISE_EPOCHS = 0.5
"""Training before the noise scale is read (at most a quarter of the budget's epochs)."""
NOISE_CHECKS = 4
NOISE_CHECKS_TO_TARGET = 8
"""Measurements over the noise run of a target (half the budget's epochs)."""
NOISE_LR_SHARE = 0.5
"""The noise run's lr as a share of the range test's suggestion."""
MIN_STEPS_PER_EPOCH = 8
"""A candidate batch size leaves at least this many steps in an epoch."""
MIN_RACE_STEPS = 12
"""Steps a race's budget must hold at least (its first rung takes a sixth)."""
RACED = 3
NEAR_TARGET = 2.0
"""A curve is projected only if its last value is within this many of its standard errors
of the target (a trend read far from the target overshoots: see the module's docstring)."""

OnStage = Callable[[str], None]


def candidate_sizes(
    smallest: int, n_train: int, cap: int | None, epochs: float | None = None
) -> list[int]:
    """``smallest`` doubling while within ``cap`` and an eighth of the training examples,
    and, for a budget of ``epochs``, while a race gets a step in its first rung
    (``advise.plan.least_budget``)."""
    most = n_train // MIN_STEPS_PER_EPOCH
    if cap is not None:
        most = min(most, cap)
    sizes = []
    size = smallest
    while size <= most and (epochs is None or epochs >= least_budget(n_train, size) * (1 - 1e-9)):
        sizes.append(size)
        size *= 2
    return sizes


def advise_batch_size(
    model: ModelLike,
    train: TensorData | tuple[torch.Tensor, torch.Tensor],
    val: TensorData | tuple[torch.Tensor, torch.Tensor],
    settings: BatchSettings | None = None,
    *,
    loss_fn: LossFn | None = None,
    on_stage: OnStage | None = None,
    on_check: OnRaceCheck | None = None,
    address: str | None = None,
) -> BatchAdvice:
    """The batch size and learning rate for ``settings``' budget (see the module's docstring).

    Args:
        model: a model (copied for every run) or a factory ``seed -> model``, on its device.
        train, val: tensors (``TensorData`` or ``(inputs, targets)``); races are judged on
            ``val``.
        settings: the budget and the search (``BatchSettings``).
        loss_fn: mean over the batch; default cross-entropy.
        on_stage: called with a short description as each stage begins.
        on_check: progress of every race: (candidate lr, the check, epochs it has trained).
        address: the Ray cluster for ``engine="ray"``.
    """
    started = time.perf_counter()
    settings = settings or BatchSettings()
    race = settings.race
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    make_model = model_factory(model)
    first = make_model(race.seed)
    device = model_device(first)
    train, val = tensor_data(train, "train").to(device), tensor_data(val, "val").to(device)
    check_race_data(train, val)
    smallest = settings.min_batch_size
    if smallest * MIN_STEPS_PER_EPOCH > len(train):
        raise InvalidParameterError(
            "min_batch_size",
            f"at most an eighth of the training examples ({len(train) // MIN_STEPS_PER_EPOCH})",
            smallest,
        )
    budget = None if settings.mode == "time" else race.epochs  # in mode time, each size's own
    if budget is not None:
        check_budget(budget, len(train), smallest)
    check_model_fits(
        first, loss_fn, train.x[:smallest], train.y[:smallest], targets=(train.y, val.y)
    )
    metric = resolve_metric(race.metric, first, train)
    if settings.target is not None:
        check_target(settings.target, metric)
    stage = on_stage or (lambda _: None)

    sizes = candidate_sizes(smallest, len(train), settings.max_batch_size, budget)
    stage("ceiling")
    optimizer = make_optimizer(race.optimizer, first, 1e-3, race.momentum, race.weight_decay)
    ceiling = find_ceiling(
        first,
        optimizer,
        race.optimizer,
        loss_fn,
        train,
        method=settings.ceiling,
        memory=settings.memory,
        start=smallest,
        limit=sizes[-1],
    )
    fitting = [b for b in sizes if ceiling.fits(b)]
    if not fitting:
        raise LrkitValueError(
            f"not even a batch of {smallest} examples fits ({ceiling.method}: the largest is "
            f"{ceiling.batch_size}); give --min-batch-size lower, or --memory"
        )

    stage("noise scale")
    noise = measure_noise(make_model, train, val, settings, loss_fn, fitting, metric)
    stage("step times")
    steps = measure_step_times(
        first,
        loss_fn,
        train,
        fitting,
        lambda net: make_optimizer(race.optimizer, net, noise.lr, race.momentum, race.weight_decay),
        seed=race.seed,
    )
    seconds_per_step = {s.batch_size: s.seconds for s in steps}
    predictions = predict(
        {b: seconds_per_step.get(b, math.nan) for b in sizes},
        noise.b_noise,
        {b: ceiling.fits(b) for b in sizes},
    )
    predicted = choose(predictions, settings.mode)

    races: list[RacedBatch] = []
    skipped: list[int] = []
    failed: dict[int, str] = {}
    raced = neighbours(predicted, predictions, RACED)
    epochs_at = {size: race.epochs for size in raced}
    if settings.mode == "time" and settings.time is not None:
        epochs_at = {
            s: time_epochs(settings.time, seconds_per_step[s], len(train), s) for s in raced
        }
    for size in raced:
        per_epoch = math.ceil(len(train) / size)
        epochs = epochs_at[size]
        if settings.mode == "time" and epochs * per_epoch < MIN_RACE_STEPS:
            skipped.append(size)
            continue
        stage(f"race at batch size {size}")
        try:
            found = advise(
                make_model,
                train,
                val,
                settings.race_at(size, epochs),
                loss_fn=loss_fn,
                on_check=on_check,
                address=address,
            )
        except RaceFailed as failure:
            failed[size] = str(failure)
            continue
        lr, reached, reached_at = found.lr, None, None
        if settings.target is not None:
            reaching = soonest(found.candidates, settings.target, metric == "accuracy")
            if reaching is not None:
                lr, reached = reaching
                reached_at = reached * per_epoch * seconds_per_step[size]
        races.append(RacedBatch(size, epochs, per_epoch, found, lr, reached, reached_at))
    if settings.target is not None and all(r.epochs_to_target is None for r in races):
        races = [project(r, settings.target, metric == "accuracy", seconds_per_step) for r in races]
    if not races and failed:
        raise RaceFailed("; ".join(f"batch size {b}: {why}" for b, why in failed.items()))
    if not races:
        shortest = MIN_RACE_STEPS * min(seconds_per_step[b] for b in skipped)
        raise InvalidParameterError(
            "time",
            f"long enough for {MIN_RACE_STEPS} steps (at least {shortest:.3g} s)",
            settings.time,
        )

    chosen, reason = _decide(settings, metric, predicted, races)
    predicted_seconds: tuple[tuple[int, float], ...] = ()
    best = next(r for r in races if r.batch_size == chosen)
    if best.epochs_to_target is not None:
        taken = best.epochs_to_target * best.steps_per_epoch
        s_min = taken / steps_factor(chosen, noise.b_noise)
        predicted_seconds = tuple(
            (p.batch_size, s_min * p.steps_factor * p.step_seconds) for p in predictions if p.fits
        )
    if skipped:
        reason += (
            f" (not raced: batch size {', '.join(map(str, skipped))}, too few steps in the time)"
        )
    if failed:
        reason += f" (not advised: batch size {', '.join(map(str, failed))}, no candidate finished)"
    return BatchAdvice(
        batch_size=chosen,
        lr=best.lr,
        metric=metric,
        mode=settings.mode,
        reason=reason,
        predicted=predicted,
        noise=noise,
        ceiling=ceiling,
        predictions=predictions,
        races=tuple(races),
        epochs=race.epochs,
        target=settings.target,
        time_budget=settings.time,
        seconds=time.perf_counter() - started,
        predicted_seconds=predicted_seconds,
        model=type(first).__name__,
        data=type(train).__name__,
    )


def time_epochs(seconds: float, step_seconds: float, n_train: int, size: int) -> float:
    """The epochs that ``seconds`` of training take at batch ``size`` (``step_seconds`` a
    step): a race's budget in mode time. Past the longest budget a race takes (``MAX_EPOCHS``,
    and ``validation.MAX_STEPS`` steps) it is refused as --time, the option it comes from."""
    per_epoch = math.ceil(n_train / size)
    most = min(MAX_EPOCHS, check.MAX_STEPS / per_epoch)
    epochs = seconds / (step_seconds * per_epoch)
    if epochs > most:
        longest = check.round_down(most * per_epoch * step_seconds)
        raise InvalidParameterError(
            "time",
            f"at most {longest:g} s (at batch size {size}, {step_seconds * 1e3:.3g} ms a step, "
            f"that is {most:g} epochs, the longest budget a race takes)",
            seconds,
        )
    return epochs


def check_target(target: float, metric: str) -> None:
    """An accuracy to reach lies in (0, 1]."""
    if metric == "accuracy" and not 0 < target <= 1:
        raise InvalidParameterError("target", "an accuracy in (0, 1]", target)


def measure_noise(
    make_model: Callable[[int], nn.Module],
    train: TensorData,
    val: TensorData,
    settings: BatchSettings,
    loss_fn: LossFn,
    fitting: list[int],
    metric: str,
) -> NoiseMeasurement:
    """B_noise at a safe lr, early in training or, for a target, where the run reaches it
    (see the module's docstring)."""
    race = settings.race
    size = min(fitting, key=lambda b: (abs(math.log(b / NOISE_BATCH)), b))
    size = max(size, 2)
    per_run = math.ceil(race.epochs * math.ceil(len(train) / size))
    found = budget_range_test(
        make_model(race.seed), train, val, settings.race_at(size, race.epochs), loss_fn, per_run
    )
    suggested = found.suggested_or_least
    if suggested is None:
        raise LrkitValueError(
            f"the range test at batch size {size} suggested no learning rate (the loss never "
            "fell): the noise scale needs a rate that trains"
        )
    lr = suggested * NOISE_LR_SHARE
    checks = NOISE_CHECKS
    if settings.target is not None:
        epochs, checks = max(race.epochs / 2, NOISE_EPOCHS), NOISE_CHECKS_TO_TARGET
    elif settings.mode == "time":
        epochs = NOISE_EPOCHS
    else:
        epochs = min(NOISE_EPOCHS, race.epochs / 4)
    model = make_model(race.seed)
    optimizer = make_optimizer(race.optimizer, model, lr, race.momentum, race.weight_decay)
    run = track_noise_scale(
        model,
        optimizer,
        loss_fn,
        train,
        val,
        NoiseSettings(
            lr=lr,
            batch_size=size,
            epochs=epochs,
            measure_every=epochs / checks,
            seed=race.seed,
        ),
    )
    read, reached = (run.points[-1] if run.points else None), None
    if settings.target is not None and run.points:
        higher = metric == "accuracy"
        at = next(
            (
                p
                for p in run.points
                if reaches(p.val_accuracy if higher else p.val_loss, settings.target, higher)
            ),
            None,
        )
        read, reached = (at or run.points[-1]), at is not None
    b_noise = read.b_simple_smoothed if read is not None else math.nan
    if run.status != "done" or not b_noise > 0:
        raise LrkitValueError(
            f"the noise scale could not be measured at batch size {size}, lr {lr:.3g} "
            f"(training {run.status}, B_simple {b_noise:.3g})"
        )
    if math.isinf(b_noise):  # |G|^2 not measurably positive: all noise, past every candidate
        b_noise = float(4 * max(fitting))
    assert read is not None  # b_noise > 0 above
    return NoiseMeasurement(
        b_noise, read.b_simple_stderr, size, lr, read.epoch, run.estimator, run.seconds, reached
    )


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


def _within(a: RacedBatch, b: RacedBatch) -> bool:
    spread = math.hypot(a.value_std, b.value_std)
    return math.isfinite(spread) and abs(a.value - b.value) <= 2 * spread


def _decide(
    settings: BatchSettings, metric: str, predicted: int, races: list[RacedBatch]
) -> tuple[int, str]:
    """The batch size the races' outcomes choose, and why, in one sentence."""
    unit = "accuracy" if metric == "accuracy" else "loss"
    if settings.mode == "target":
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
    higher = metric == "accuracy"
    best = max(races, key=lambda r: r.value if higher else -r.value)
    tied = [r for r in races if r is best or _within(r, best)]
    if settings.mode == "epochs":
        pick = max(tied, key=lambda r: r.batch_size)
        why = (
            f"batch size {pick.batch_size} did best in {settings.race.epochs:g} epochs"
            if pick is best
            else f"batch size {pick.batch_size} was within noise of the best "
            f"({best.batch_size}) in {settings.race.epochs:g} epochs, with the same examples in "
            f"less time"
        )
        return pick.batch_size, f"{why}; the noise-scale model predicted {predicted}"
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
