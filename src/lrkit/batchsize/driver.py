"""``advise_batch_size``: the batch size (and then the learning rate) that makes the most of
the user's budget on the user's machine.

    ceiling (``batchsize.ceiling``) -> candidate sizes (``min_batch_size`` doubling, up to
    the ceiling and an eighth of the training examples) -> the noise scale (``lrkit.noise``;
    for a target, where the target is reached) -> their step times
    (``batchsize.throughput``) -> the model's choice (``batchsize.model``) -> the
    learning-rate race (``lrkit.advise``) at it and its neighbours B/2 and 2B -> the measured
    outcome decides (``batchsize.judging``).

The noise scale is measured at ``NOISE_BATCH`` (the nearest candidate) training at half the
range test's suggestion there (a rate safely below the race's candidates): the smoothed
B_simple with its jackknife error. B_noise grows as the loss falls (McCandlish et al. 2018,
section 4: the critical batch size is a function of the loss to reach), so where it is read
matters. For a target, it is read where the noise run's validation curve first reaches the
target (checked ``NOISE_CHECKS_TO_TARGET`` times over half the budget, the races' horizon;
at its end where it never does): the loss the person asked for. Otherwise it is read after
``NOISE_EPOCHS`` (``NOISE_CHECKS`` measurements), an early reading that leans to smaller
batches; the race at the neighbours is there to overrule the model where it is wrong.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import torch
from torch import nn

from lrkit import validation as check
from lrkit.advise.driver import (
    ModelLike,
    advise,
    budget_range_test,
    check_race_data,
    model_factory,
    resolve_metric,
)
from lrkit.advise.plan import check_budget, least_budget
from lrkit.advise.race import OnRaceCheck, RaceFailed
from lrkit.advise.settings import MAX_EPOCHS
from lrkit.batchsize.ceiling import find_ceiling
from lrkit.batchsize.crossing import reaches
from lrkit.batchsize.judging import decide, project, read_race
from lrkit.batchsize.model import BatchPrediction, choose, neighbours, predict, steps_factor
from lrkit.batchsize.result import BatchAdvice, Ceiling, NoiseMeasurement, RacedBatch
from lrkit.batchsize.settings import BatchSettings, CeilingSettings
from lrkit.batchsize.throughput import measure_step_times
from lrkit.data.named import held_data
from lrkit.data.tensors import TensorData, tensor_data
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.noise.tracking import NoiseSettings, track_noise_scale
from lrkit.training.device import model_device
from lrkit.training.evaluate import LossFn
from lrkit.training.fit_check import check_model_fits
from lrkit.training.optimizers import make_optimizer
from lrkit.training.outputs import default_loss

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

OnStage = Callable[[str], None]


@dataclass(frozen=True)
class BatchInputs:
    """What every stage works on, checked before any of them runs: the settings, the model
    factory and its first model, the data on that model's device, the loss and the metric
    the races are judged by."""

    settings: BatchSettings
    make_model: Callable[[int], nn.Module]
    first: nn.Module
    train: TensorData
    val: TensorData
    loss_fn: LossFn
    metric: str

    @property
    def budget(self) -> float | None:
        """The races' epochs; None in mode time, where each size has its own."""
        return None if self.settings.mode == "time" else self.settings.race.epochs


@dataclass(frozen=True)
class Races:
    """The races at the sizes raced: those that gave advice, those skipped (mode time: too
    few steps in the time) and those that failed (no candidate finished), with why."""

    raced: list[RacedBatch]
    skipped: list[int]
    failed: dict[int, str]

    def left_out(self) -> str:
        """What the advice's reason adds about the sizes skipped and failed."""
        said = ""
        if self.skipped:
            sizes = ", ".join(map(str, self.skipped))
            said += f" (not raced: batch size {sizes}, too few steps in the time)"
        if self.failed:
            sizes = ", ".join(map(str, self.failed))
            said += f" (not advised: batch size {sizes}, no candidate finished)"
        return said


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
    train: object,
    val: object,
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
        train, val: tensors (``TensorData`` or ``(inputs, targets)``), or dicts with
            ``labels`` (``data.named.held_data``); races are judged on ``val``.
        settings: the budget and the search (``BatchSettings``).
        loss_fn: mean over the batch; default cross-entropy.
        on_stage: called with a short description as each stage begins.
        on_check: progress of every race: (candidate lr, the check, epochs it has trained).
        address: the Ray cluster for the ray engine.
    """
    started = time.perf_counter()
    settings = settings or BatchSettings()
    train, val = held_data(train, "train"), held_data(val, "val")
    inputs = check_inputs(model, train, val, settings, loss_fn or default_loss(train.x))
    stage = on_stage or (lambda _: None)
    sizes = candidate_sizes(
        settings.min_batch_size, len(inputs.train), settings.max_batch_size, inputs.budget
    )
    stage("ceiling")
    ceiling, fitting = measure_ceiling(inputs, sizes)
    stage("noise scale")
    noise = measure_noise(
        inputs.make_model,
        inputs.train,
        inputs.val,
        settings,
        inputs.loss_fn,
        fitting,
        inputs.metric,
    )
    stage("step times")
    seconds_per_step = step_seconds(inputs, fitting, noise.lr)
    predictions = predict(
        {b: seconds_per_step.get(b, math.nan) for b in sizes},
        noise.b_noise,
        {b: ceiling.fits(b) for b in sizes},
    )
    predicted = choose(predictions, settings.mode)
    raced = neighbours(predicted, predictions, RACED)
    races = race_sizes(inputs, raced, seconds_per_step, stage, on_check, address)
    chosen, reason = decide(settings, inputs.metric, predicted, races.raced)
    best = next(r for r in races.raced if r.batch_size == chosen)
    return BatchAdvice(
        batch_size=chosen,
        lr=best.lr,
        metric=inputs.metric,
        mode=settings.mode,
        reason=reason + races.left_out(),
        predicted=predicted,
        noise=noise,
        ceiling=ceiling,
        predictions=predictions,
        races=tuple(races.raced),
        epochs=settings.race.epochs,
        target=settings.target,
        time_budget=settings.time,
        seconds=time.perf_counter() - started,
        predicted_seconds=predicted_seconds(best, noise.b_noise, predictions),
        model=type(inputs.first).__name__,
        data=type(inputs.train).__name__,
    )


def check_inputs(
    model: ModelLike,
    train: TensorData | tuple[torch.Tensor, torch.Tensor],
    val: TensorData | tuple[torch.Tensor, torch.Tensor],
    settings: BatchSettings,
    loss_fn: LossFn,
) -> BatchInputs:
    """The inputs on the model's device, refused before any work where the smallest batch
    leaves fewer than ``MIN_STEPS_PER_EPOCH`` steps an epoch, the budget gives a race no
    step, the model does not fit the data or an accuracy target lies outside (0, 1]."""
    race = settings.race
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
    if settings.mode != "time":
        check_budget(race.epochs, len(train), smallest)
    check_model_fits(
        first, loss_fn, train.x[:smallest], train.y[:smallest], targets=(train.y, val.y)
    )
    metric = resolve_metric(race.metric, first, train, loss_fn)
    if settings.target is not None:
        check_target(settings.target, metric)
    return BatchInputs(settings, make_model, first, train, val, loss_fn, metric)


def measure_ceiling(inputs: BatchInputs, sizes: list[int]) -> tuple[Ceiling, list[int]]:
    """The largest batch that fits (``batchsize.ceiling``, up to the largest candidate), and
    the candidate ``sizes`` under it; refused where none is."""
    settings, race = inputs.settings, inputs.settings.race
    optimizer = make_optimizer(
        race.optimizer, inputs.first, 1e-3, race.momentum, race.weight_decay, race.optimizer_args
    )
    ceiling = find_ceiling(
        inputs.first,
        optimizer,
        race.optimizer,
        inputs.loss_fn,
        inputs.train,
        CeilingSettings(race.ceiling, race.memory, start=settings.min_batch_size, limit=sizes[-1]),
    )
    fitting = [b for b in sizes if ceiling.fits(b)]
    if not fitting:
        raise LrkitValueError(
            f"not even a batch of {settings.min_batch_size} examples fits ({ceiling.method}: "
            f"the largest is {ceiling.batch_size}); give --min-batch-size lower, or --memory"
        )
    return ceiling, fitting


def step_seconds(inputs: BatchInputs, fitting: list[int], lr: float) -> dict[int, float]:
    """Batch size -> the seconds a training step takes at it (``batchsize.throughput``), at
    the noise run's ``lr``."""
    race = inputs.settings.race
    steps = measure_step_times(
        inputs.first,
        inputs.loss_fn,
        inputs.train,
        fitting,
        lambda net: make_optimizer(
            race.optimizer, net, lr, race.momentum, race.weight_decay, race.optimizer_args
        ),
        seed=race.seed,
    )
    return {s.batch_size: s.seconds for s in steps}


def race_sizes(
    inputs: BatchInputs,
    sizes: list[int],
    seconds_per_step: dict[int, float],
    stage: OnStage,
    on_check: OnRaceCheck | None,
    address: str | None,
) -> Races:
    """The learning-rate race (``lrkit.advise``) at each of ``sizes`` on its budget
    (``race_epochs``); for a target that no race reached, each race's projected crossing
    (``judging.project``). Refused where no size was raced or none gave advice."""
    settings, n_train = inputs.settings, len(inputs.train)
    higher = inputs.metric == "accuracy"
    raced: list[RacedBatch] = []
    skipped: list[int] = []
    failed: dict[int, str] = {}
    epochs_at = race_epochs(settings, sizes, seconds_per_step, n_train)
    for size in sizes:
        per_epoch = math.ceil(n_train / size)
        epochs = epochs_at[size]
        if settings.mode == "time" and epochs * per_epoch < MIN_RACE_STEPS:
            skipped.append(size)
            continue
        stage(f"race at batch size {size}")
        try:
            found = advise(
                inputs.make_model,
                inputs.train,
                inputs.val,
                settings.race_at(size, epochs),
                loss_fn=inputs.loss_fn,
                on_check=on_check,
                address=address,
            )
        except RaceFailed as failure:
            failed[size] = str(failure)
            continue
        step = seconds_per_step[size]
        raced.append(read_race(size, epochs, per_epoch, found, step, settings.target, higher))
    if settings.target is not None and all(r.epochs_to_target is None for r in raced):
        raced = [project(r, settings.target, higher, seconds_per_step) for r in raced]
    races = Races(raced, skipped, failed)
    if not raced:
        refuse_unraced(races, seconds_per_step, settings.time)
    return races


def race_epochs(
    settings: BatchSettings, sizes: list[int], seconds_per_step: dict[int, float], n_train: int
) -> dict[int, float]:
    """Each size's race budget: the race's epochs; in mode time, the epochs that
    ``settings.time`` seconds of training take at its step time (``time_epochs``)."""
    if settings.mode == "time" and settings.time is not None:
        return {s: time_epochs(settings.time, seconds_per_step[s], n_train, s) for s in sizes}
    return {size: settings.race.epochs for size in sizes}


def refuse_unraced(
    races: Races, seconds_per_step: dict[int, float], time_budget: float | None
) -> NoReturn:
    """Where no race gave advice: why, as ``RaceFailed`` (races without a finisher) or as
    a --time too short for ``MIN_RACE_STEPS`` steps at any size."""
    if races.failed:
        raise RaceFailed("; ".join(f"batch size {b}: {why}" for b, why in races.failed.items()))
    shortest = MIN_RACE_STEPS * min(seconds_per_step[b] for b in races.skipped)
    raise InvalidParameterError(
        "time", f"long enough for {MIN_RACE_STEPS} steps (at least {shortest:.3g} s)", time_budget
    )


def predicted_seconds(
    best: RacedBatch, b_noise: float, predictions: tuple[BatchPrediction, ...]
) -> tuple[tuple[int, float], ...]:
    """For a target that the chosen size's race reached: the model's seconds to it at every
    size that fits, S_min (1 + B_noise / B) t(B), with S_min from the steps that race took
    (steps = S_min (1 + B_noise / B) at its size); empty otherwise."""
    if best.epochs_to_target is None:
        return ()
    taken = best.epochs_to_target * best.steps_per_epoch
    s_min = taken / steps_factor(best.batch_size, b_noise)
    return tuple(
        (p.batch_size, s_min * p.steps_factor * p.step_seconds) for p in predictions if p.fits
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
    optimizer = make_optimizer(
        race.optimizer, model, lr, race.momentum, race.weight_decay, race.optimizer_args
    )
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
