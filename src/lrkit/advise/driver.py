"""``advise`` (the driver): a range test, candidates from it, and a race on the budget
through the engines.

    range test (``find_lr``) -> candidates (``advise.candidates``) -> race (``advise.race``,
    the plan of ``advise.plan``) -> its winner, scaled to the budget (``advise.horizon``)
    -> the advised learning rate, with the evidence.

The range test is an exponential sweep from ``EXP_START`` to ``EXP_END``, each lr held
``HOLD`` iterations, the loss of ``EVAL_EXAMPLES`` validation examples measured after each
hold (the curve the rules read): as many lrs as a quarter of one run's steps allows, between
``EXP_LRS``. It stops where the loss diverges. Held and measured on held-out examples, its
turn lies where the race's ladder expects it (``advise.candidates``); a sweep of one
iteration a lr read on its smoothed loss (fastai's) put it up to 30 times too high on the
benchmark's tuning problems, the smoothing's lag carrying the minimum past the turn.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lrkit.advise.candidates import candidate_lrs
from lrkit.advise.confidence import as_good_as_winner, cautions, confidence
from lrkit.advise.horizon import horizon_factor
from lrkit.advise.micro import MicroBatching, micro_batching
from lrkit.advise.plan import (
    CHECKS_PER_RUNG,
    EXP_END,
    EXP_LRS,
    EXP_START,
    HOLD,
    RANGE_TEST_SHARE,
    Rung,
    check_budget,
    race_plan,
    trial_epochs,
)
from lrkit.advise.race import OnRaceCheck, RaceFailed, RaceSetup, metric_of, race, worst
from lrkit.advise.result import Advice, FinishedRun, RacedCandidate
from lrkit.advise.settings import MIN_VAL_EXAMPLES, AdviseSettings
from lrkit.batchsize.ceiling import find_ceiling
from lrkit.batchsize.settings import CeilingSettings
from lrkit.data.named import held_data
from lrkit.data.tensors import TensorData, tensor_data
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.programs import exponential_range
from lrkit.rangetest.result import RangeTestResult
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.schedules.recipe import Recipe, ScheduleFactory
from lrkit.sweep.definition import TrialKey
from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup
from lrkit.sweep.engines.names import RAY, SEQUENTIAL
from lrkit.sweep.engines.registry import EngineChoice, EngineRequest, choose_engine, make_engine
from lrkit.training.device import model_device
from lrkit.training.evaluate import LossFn
from lrkit.training.fit_check import check_finite, check_model_fits
from lrkit.training.optimizers import OptimizerFactory, OptimizerSpec
from lrkit.training.outputs import call_model, default_loss, scored_hits
from lrkit.training.records import Checkpoint, CurvePoint, TrialOutcome

ModelLike = nn.Module | Callable[[int], nn.Module]

EVAL_EXAMPLES = 256
FIT_CHECK_EXAMPLES = 8
"""Examples of the first batch the model and loss are checked on before any training (and
the size the ceiling's probe starts from)."""
ACCUMULATION_REASON = "gradient accumulation runs on the plain loop, one trial at a time"


def advise(
    model: ModelLike,
    train: object,
    val: object,
    settings: AdviseSettings | None = None,
    *,
    loss_fn: LossFn | None = None,
    on_check: OnRaceCheck | None = None,
    address: str | None = None,
    optimizer: OptimizerFactory | None = None,
    schedule: ScheduleFactory | None = None,
) -> Advice:
    """The learning rate that trains ``model`` best in ``settings.epochs`` epochs under the
    run's recipe (the schedule's peak, where it has one).

    Args:
        model: a model (each candidate trains a deep copy of it, from its initial weights)
            or a factory ``seed -> model`` (called with ``settings.seed``); on its device.
        train, val: tensors (``TensorData`` or ``(inputs, targets)``), or dicts with
            ``labels`` as Hugging Face data comes (a ``datasets.Dataset``, a list of dicts,
            a ``DataLoader`` of dicts: ``data.named.held_data``); the race is judged on
            ``val``.
        settings: the budget, batch size, optimizer, recipe, metric and race
            (``AdviseSettings``).
        loss_fn: mean over the batch; default cross-entropy.
        on_check: progress of the race: (candidate lr, the check, epochs it has trained).
        address: the Ray cluster for the ray engine (default: a local instance).
        optimizer: a factory ``(parameters, lr) -> Optimizer`` in place of
            ``settings.optimizer`` (e.g. ``lambda p, lr: torch.optim.RAdam(p, lr=lr)``).
        schedule: a factory ``(peak lr, iterations) -> Schedule`` in place of
            ``settings.schedule``, over the budget after ``settings.warmup``.
    """
    settings = settings or AdviseSettings()
    train, val = held_data(train, "train"), held_data(val, "val")
    spec = OptimizerSpec(
        settings.optimizer,
        settings.momentum,
        settings.weight_decay,
        settings.optimizer_args,
        optimizer,
    )
    spec.check()
    recipe = Recipe(settings.schedule, settings.warmup, schedule)
    recipe.check()
    # The range test and the race draw (dropout masks) from a fork of the global RNG seeded by
    # the settings: the advice is the same whatever ran before, and the caller's RNG is kept.
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []  # type: ignore[no-untyped-call]
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(settings.seed)
        work = _prepared(model, train, val, settings, loss_fn or default_loss(train.x), spec)
        return _advise(work, settings, spec, recipe, on_check, address)


@dataclass(frozen=True)
class _Prepared:
    """The race's inputs, checked: the model factory, a first model, the data on its device,
    the loss, the metric and the budget's steps."""

    make_model: Callable[[int], nn.Module]
    first: nn.Module
    device: torch.device
    train: TensorData
    val: TensorData
    loss_fn: LossFn
    metric: str
    steps: int
    batching: MicroBatching


def _prepared(
    model: ModelLike,
    train_data: TensorData | tuple[torch.Tensor, torch.Tensor],
    val_data: TensorData | tuple[torch.Tensor, torch.Tensor],
    settings: AdviseSettings,
    loss_fn: LossFn,
    spec: OptimizerSpec,
) -> _Prepared:
    """Everything checked before any training: the data, the batch size, the budget, one
    forward pass of the model and loss, and the metric."""
    make_model = model_factory(model)
    first = make_model(settings.seed)
    device = model_device(first)
    train = tensor_data(train_data, "train").to(device)
    val = tensor_data(val_data, "val").to(device)
    check_race_data(train, val)
    if settings.batch_size > len(train):
        raise InvalidParameterError(
            "batch_size",
            f"at most the number of training examples ({len(train)})",
            settings.batch_size,
        )
    check_budget(settings.epochs, len(train), settings.batch_size)
    # A few examples show that the model and loss fit the data; the whole batch may not fit
    # in memory (``batching``).
    batch = train.head(min(settings.batch_size, FIT_CHECK_EXAMPLES))
    check_model_fits(first, loss_fn, batch.x, batch.y, targets=(train.y, val.y))
    metric = resolve_metric(settings.metric, first, train, loss_fn)
    steps = math.ceil(settings.epochs * math.ceil(len(train) / settings.batch_size))
    batching = batch_in_memory(first, train, settings, loss_fn, spec)
    return _Prepared(make_model, first, device, train, val, loss_fn, metric, steps, batching)


def batch_in_memory(
    model: nn.Module,
    train: TensorData,
    settings: AdviseSettings,
    loss_fn: LossFn,
    spec: OptimizerSpec,
) -> MicroBatching:
    """How the batch trains: as ``settings.accumulation_steps`` micro-batches where given,
    else in as few as fit (``advise.micro``) under the largest batch that fits
    (``batchsize.ceiling``: probed on CUDA with ``spec``'s optimizer, the memory model
    elsewhere, which counts the state of the optimizers it knows by name and an Adam's for
    any other, up to the batch)."""
    b = settings.batch_size
    if settings.accumulation_steps is not None:
        k = settings.accumulation_steps
        return MicroBatching(b, b // k, k)
    # The memory model's forward passes draw dropout masks: from a fork, so that the race's
    # draws are the same whether or not the memory was measured.
    devices = [model_device(model).index or 0] if model_device(model).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        found = find_ceiling(
            model,
            spec.build(model.parameters(), 1e-3),
            spec.name if spec.factory is None else spec.label,
            loss_fn,
            train,
            CeilingSettings(
                settings.ceiling, settings.memory, start=min(b, FIT_CHECK_EXAMPLES), limit=b
            ),
        )
    return micro_batching(b, found.batch_size, found.method)


def _advise(
    work: _Prepared,
    settings: AdviseSettings,
    spec: OptimizerSpec,
    recipe: Recipe,
    on_check: OnRaceCheck | None,
    address: str | None,
) -> Advice:
    started = time.perf_counter()
    k = work.batching.accumulation_steps
    found = budget_range_test(
        work.first, work.train, work.val, settings, work.loss_fn, work.steps, spec, k
    )
    range_test_seconds = time.perf_counter() - started
    spent = sum(len(r.record.points) for r in found.rounds) / work.steps  # runs of the budget
    candidates, left_out = candidate_lrs(
        found.suggestions, found.method, affordable(settings.candidates, spent)
    )
    choice = _engine(settings, spec, work, address)
    plan = race_plan(settings.epochs, len(candidates))
    setup = TrainingSetup(work.make_model, work.loss_fn, work.train, work.val, None, work.device)
    rs = RaceSetup(
        setup,
        make_engine(choice, address),
        settings.batch_size,
        work.metric,
        spec,
        settings.seed,
        recipe,
        work.steps,
        k,
    )
    raced, ranking, kept = race(
        candidates,
        plan,
        rs,
        on_check,
        edge_extensions(plan, len(candidates), spent, settings.epochs),
        keep_final=settings.finish,
    )
    by_lr = {c.lr: c for c in raced}
    best = by_lr[ranking[0]]
    if best.status != "done":
        raise RaceFailed(no_finisher(raced))
    second = by_lr[ranking[1]] if len(ranking) > 1 else None
    runner_up = second if second is not None and second.epochs_run == best.epochs_run else None
    factor = horizon_factor(spec, recipe, best.epochs_run, settings.epochs)
    finished = (
        finish_run(best.lr * factor, kept, rs, settings.epochs, on_check)
        if settings.finish
        else None
    )
    low, high = as_good_as_winner(raced, best.lr)
    trial_epochs_run = sum(c.epochs_run for c in raced)
    return Advice(
        lr=best.lr * factor,
        raced_lr=best.lr,
        horizon_factor=factor,
        batch_size=settings.batch_size,
        metric=work.metric,
        epochs=settings.epochs,
        optimizer=spec.label,
        value=best.value,
        candidates=tuple(raced),
        runner_up=runner_up.lr if runner_up is not None else None,
        runner_up_within_noise=_within_noise(best, runner_up),
        range_test=found,
        engine=choice.engine,
        engine_reason=choice.reason,
        seconds=time.perf_counter() - started,
        range_test_seconds=range_test_seconds,
        trial_epochs=trial_epochs_run,
        as_good=(low * factor, high * factor),
        cautions=cautions(raced, best.lr, plan[-1].epochs),
        confidence=confidence(raced, best.lr, plan[-1].epochs, spec.sgd, spec.named),
        left_out=left_out,
        model=type(work.first).__name__,
        data=type(work.train).__name__,
        recipe=recipe.label(),
        range_test_budgets=spent,
        finished=finished,
        batching=work.batching,
    )


def finish_run(
    lr: float,
    kept: dict[float, Checkpoint],
    rs: RaceSetup,
    epochs: float,
    on_check: OnRaceCheck | None,
) -> FinishedRun:
    """The advised lr trained to the full budget: on from the race's checkpoint of that lr
    where it kept one (the winner's, when the advice is the winner), else from the start."""
    start = kept.get(lr)
    done = start.position.progress if start is not None else 0.0
    plan = rs.plan(lr, epochs, (epochs - done) / CHECKS_PER_RUNG, start, keep=True)
    outcomes: dict[float, TrialOutcome] = {}

    def report(key: TrialKey, point: CurvePoint, progress: float) -> None:
        if on_check is not None:
            on_check(key.lr, point, progress)

    rs.engine.run(
        [rs.job(lr, plan)],
        rs.setup,
        EngineEvents(lambda key, outcome: outcomes.__setitem__(key.lr, outcome), None, report),
    )
    outcome = outcomes[lr]
    points = outcome.points[1:]
    return FinishedRun(
        lr=lr,
        status=outcome.status,
        value=metric_of(points[-1], rs.metric) if points else worst(rs.metric),
        epochs_trained=epochs - done,
        resumed_at=done,
        curve=tuple((p.epoch, metric_of(p, rs.metric)) for p in points),
        error=outcome.error,
        state=outcome.checkpoint,
    )


def check_race_data(train: TensorData, val: TensorData) -> None:
    """Finite inputs, and enough validation examples to tell candidates apart."""
    check_finite({"training": train, "validation": val})
    if len(val) < MIN_VAL_EXAMPLES:
        raise LrkitValueError(
            f"val holds {len(val)} example{'s' if len(val) > 1 else ''}; the race needs at "
            f"least {MIN_VAL_EXAMPLES} to tell its candidates apart"
        )


def no_finisher(raced: list[RacedCandidate]) -> str:
    """Why a race has no winner: how each candidate ended, and the first error raised."""
    ended = ", ".join(f"{c.lr:.4g} {c.status}" for c in raced)
    error = next((c.error for c in raced if c.error), None)
    return (
        f"no candidate of the race finished (lr {ended})"
        + (f"; the first failure: {error}" if error else "")
        + ": nothing to advise; check the model, the data and the loss"
    )


COST_TARGET = 2.5
"""Runs of the budget that the range test and the race take in all, at most, where that
leaves room for ``MIN_CANDIDATES`` (the limit is 3: evaluations and set-up come on top)."""
MIN_CANDIDATES = 3


EXTENDED_TARGET = 2.75
"""Runs of the budget the race may reach with the candidates it adds beyond an end of the
ladder (``advise.race``), at most ``MAX_EXTENSIONS`` of them."""
MAX_EXTENSIONS = 4


def edge_extensions(plan: tuple[Rung, ...], candidates: int, spent: float, epochs: float) -> int:
    """How many candidates the race may add at its first rung within ``EXTENDED_TARGET``."""
    left = EXTENDED_TARGET - spent - trial_epochs(plan, candidates) / epochs
    return max(0, min(MAX_EXTENSIONS, math.floor(left / (plan[0].epochs / epochs) + 1e-9)))


def affordable(most: int, spent: float) -> int:
    """How many candidates the race can take after a range test of ``spent`` runs: the most
    (at most ``most``) whose plan fits ``COST_TARGET``, and never fewer than
    ``MIN_CANDIDATES``."""
    fits = [
        n
        for n in range(MIN_CANDIDATES, most + 1)
        if spent + trial_epochs(race_plan(1.0, n), n) <= COST_TARGET
    ]
    return max(fits, default=min(MIN_CANDIDATES, most))


def resolve_metric(requested: str, model: nn.Module, train: TensorData, loss_fn: LossFn) -> str:
    """accuracy for integer class labels and an output that scores classes ((batch,
    classes), or per token (batch, length, vocabulary): ``training.outputs.class_axis``),
    else the loss; a metric asked for that the data cannot give is refused."""
    classifies = False
    if not train.y.is_floating_point():
        was_training = model.training
        model.eval()
        with torch.no_grad():
            returned = call_model(model, train.x[:2])
        model.train(was_training)
        classifies = scored_hits(returned, loss_fn, train.y[:2]) is not None
    if requested == "accuracy" and not classifies:
        kind = "float targets" if train.y.is_floating_point() else "outputs that score no classes"
        need = "integer class labels and an output of class scores (batch, classes)"
        raise LrkitValueError(
            f"metric accuracy needs {need}, got {kind}",
            cli_message=f"--metric accuracy needs {need}, got {kind}: use --metric loss",
        )
    if requested == "auto":
        return "accuracy" if classifies else "loss"
    return requested


def model_factory(model: ModelLike) -> Callable[[int], nn.Module]:
    """seed -> a fresh model: the factory itself, or deep copies of the model."""
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise LrkitValueError(
                f"model must be an nn.Module or a factory seed -> nn.Module, got "
                f"{type(model).__name__}"
            )

        def make(seed: int) -> nn.Module:
            built = model(seed)
            if not isinstance(built, nn.Module):
                raise LrkitValueError(f"the model factory returned {type(built).__name__}")
            return built

        return make
    try:
        copy.deepcopy(model)
    except Exception as exc:
        raise LrkitValueError(
            f"the model cannot be copied ({type(exc).__name__}: {exc}); every candidate "
            "trains its own copy: give a factory seed -> model instead"
        ) from None
    return lambda seed: copy.deepcopy(model)


def range_test_settings(
    settings: AdviseSettings, steps_per_run: int, accumulation_steps: int = 1
) -> RangeTestSettings:
    """The range test for the budget (see the module's docstring), its batches in
    ``accumulation_steps`` micro-batches."""
    low, high = EXP_LRS
    lrs = int(min(max(RANGE_TEST_SHARE * steps_per_run / HOLD, low), high))
    return RangeTestSettings(
        batch_size=settings.batch_size // accumulation_steps,
        accumulation_steps=accumulation_steps,
        program=exponential_range(EXP_START, EXP_END, lrs, HOLD),
        rounds=1,
        curve="eval",
        seed=settings.seed,
    )


def budget_range_test(
    model: nn.Module,
    train: TensorData,
    val: TensorData,
    settings: AdviseSettings,
    loss_fn: LossFn,
    steps: int,
    spec: OptimizerSpec | None = None,
    accumulation_steps: int = 1,
) -> RangeTestResult:
    """The range test for a budget of ``steps`` (see the module's docstring), with
    ``spec``'s optimizer (default: the settings'), its batches in ``accumulation_steps``
    micro-batches."""
    test = range_test_settings(settings, steps, accumulation_steps)
    spec = spec or OptimizerSpec(
        settings.optimizer, settings.momentum, settings.weight_decay, settings.optimizer_args
    )
    optimizer = spec.build(model.parameters(), test.lr_program.lrs[0])
    return find_lr(
        model, train, test, loss_fn=loss_fn, optimizer=optimizer, eval_data=val.head(EVAL_EXAMPLES)
    )


def _engine(
    settings: AdviseSettings, spec: OptimizerSpec, work: _Prepared, address: str | None
) -> EngineChoice:
    """The engine the race runs on: the candidates spread over the CPU's cores by default,
    stacked where the model and optimizer allow."""
    model = work.make_model(settings.seed).to(work.device)
    if work.batching.accumulation_steps > 1:
        # One trial at a time unless told otherwise: the micro-batch is what one training fits.
        name = settings.engine if settings.engine in (SEQUENTIAL, RAY) else SEQUENTIAL
        request = EngineRequest(name, settings.workers or 1, address, spread_trials=True)
        plain = choose_engine(request, spec.label, model, work.train.x[:2])
        return dataclasses.replace(plain, reason=ACCUMULATION_REASON)
    request = EngineRequest(settings.engine, settings.workers, address, spread_trials=True)
    return choose_engine(request, spec.label, model, work.train.x[:2])


def _within_noise(best: RacedCandidate, other: RacedCandidate | None) -> bool | None:
    """Two values within twice their combined noise."""
    if other is None or not (math.isfinite(best.value_std) and math.isfinite(other.value_std)):
        return None
    return abs(best.value - other.value) <= 2 * math.hypot(best.value_std, other.value_std)
