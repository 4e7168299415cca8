"""Tracking the gradient noise scale over a training run, and the critical batch size it
gives (McCandlish et al. 2018).

The model trains on the trial loop (``training.loop``); at every check (each
``measure_every`` epochs, and at the start) a ``NoiseMeter`` measures B_simple on fresh
examples drawn by its own generator. The critical batch size is read as the smoothed
B_simple at the end of training: B_crit ~ B_noise, and B_simple is the paper's estimate of
B_noise (equal to it when the Hessian is a multiple of the identity).

On a ``DistributedDataParallel`` model in a job of several processes, the model trains on
global batches of ``batch_size`` x world examples (each rank its share of each, the order a
single process would read), and the two-batch estimator comes for free at every step
(``training.distributed.NoiseHook``: each rank's own gradient is the small batch, the
all-reduced one the big batch); a point at each check pools the steps since the previous
check, so there is no point at iteration 0. Either way the measurements hook into the one
loop: at its checks, and (the free estimator) after each of its steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from lrkit import validation as check
from lrkit.data.features import Features
from lrkit.data.tensors import TensorData
from lrkit.errors import InvalidParameterError
from lrkit.noise import ESTIMATORS
from lrkit.noise.estimators import (
    NoiseEstimate,
    NoiseMeter,
    NoiseSmoother,
    choose_estimator,
    two_batch_from_norms,
)
from lrkit.training import distributed
from lrkit.training.data_parallel import DataParallel
from lrkit.training.distributed import Shard
from lrkit.training.evaluate import LossFn
from lrkit.training.fit_check import check_model_fits
from lrkit.training.loop import OneProcess, TrialHooks, train_trial
from lrkit.training.records import CurvePoint, TrialPlan

DATA_PARALLEL_ESTIMATOR = "two-batch-ddp"
"""The estimator of a data-parallel run: the ranks' gradients against the all-reduced one."""


@dataclass(frozen=True)
class NoisePoint:
    iteration: int
    epoch: float
    b_simple: float
    b_simple_stderr: float
    b_simple_smoothed: float
    grad_norm_sq: float
    trace_sigma: float
    train_loss: float
    val_loss: float
    val_accuracy: float = math.nan
    """The validation accuracy at this check (nan where the model is not a classifier)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "epoch": self.epoch,
            "b_simple": _finite(self.b_simple),
            "b_simple_stderr": _finite(self.b_simple_stderr),
            "b_simple_smoothed": _finite(self.b_simple_smoothed),
            "grad_norm_sq": self.grad_norm_sq,
            "trace_sigma": self.trace_sigma,
            "train_loss": _finite(self.train_loss),
            "val_loss": _finite(self.val_loss),
            "val_accuracy": _finite(self.val_accuracy),
        }


def noise_point(point: CurvePoint, found: NoiseEstimate, smoothed: float) -> NoisePoint:
    """A check of the training curve with the measurement taken there."""
    return NoisePoint(
        point.iteration,
        point.epoch,
        found.b_simple,
        found.b_simple_stderr,
        smoothed,
        found.grad_norm_sq,
        found.trace_sigma,
        point.train_loss,
        point.val_loss,
        point.val_accuracy,
    )


@dataclass(frozen=True)
class NoiseRun:
    """B_simple over a training run, and the critical batch size it suggests."""

    model: str
    data: str
    batch_size: int
    lr: float
    estimator: str
    examples_per_measurement: int
    points: tuple[NoisePoint, ...]
    status: str
    seconds: float
    world_size: int = 1
    """Processes of a data-parallel (DDP) run; ``batch_size`` is then the global batch."""
    diverged_at: int | None = None
    """The iteration whose loss was first not finite, when training diverged."""

    @property
    def critical_batch_size(self) -> float:
        """The smoothed B_simple at the last measurement (nan with none)."""
        return self.points[-1].b_simple_smoothed if self.points else math.nan

    @property
    def critical_batch_size_stderr(self) -> float:
        """The last measurement's own standard error (the smoothing only narrows it)."""
        return self.points[-1].b_simple_stderr if self.points else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "estimator": self.estimator,
            "examples_per_measurement": self.examples_per_measurement,
            "status": self.status,
            "points": [p.to_json() for p in self.points],
            "critical_batch_size": _finite(self.critical_batch_size),
            "critical_batch_size_stderr": _finite(self.critical_batch_size_stderr),
            "seconds": self.seconds,
            "world_size": self.world_size,
            "diverged_at": self.diverged_at,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


DEFAULT_EXAMPLES = 2048
"""Examples a measurement draws unless told otherwise."""
MEASURE_EVERY = 0.25
"""Epochs between measurements unless told otherwise (the CLI fits it to a run's epochs:
``validation.default_between_checks``)."""


@dataclass(frozen=True)
class NoiseSettings:
    """How to train and how to measure."""

    lr: float = 0.5
    batch_size: int = 16
    epochs: float = 5.0
    measure_every: float = MEASURE_EVERY
    examples: int | None = None
    """Examples per measurement, at most the training examples; None: ``DEFAULT_EXAMPLES``,
    or all the training examples where there are fewer."""
    estimator: str = "auto"
    big_factor: int = 8
    """The two-batch estimator's B_big / B_small."""
    seed: int = 0

    def plan(self) -> TrialPlan:
        """The training: a check (and a measurement) every ``measure_every`` epochs."""
        return TrialPlan(
            lr=self.lr,
            batch_size=self.batch_size,
            epochs=self.epochs,
            eval_every=self.measure_every,
            seed=self.seed,
        )

    def check(self, n_train: int | None = None) -> NoiseSettings:
        """Every setting, before anything is allocated; with ``n_train``, the training
        examples, also the sizes that depend on them (a measurement draws its examples from
        the training set, so it cannot use more than there are)."""
        check.budget_epochs("epochs", self.epochs)
        check.positive_float("lr", self.lr)
        check.int_at_least("batch_size", self.batch_size, 2, "the noise scale compares examples")
        if n_train is not None:
            check.budget_steps("epochs", self.epochs, n_train, self.batch_size)
        check.epochs_between_checks("measure_every", self.measure_every, self.epochs)
        check.choice("estimator", self.estimator, ESTIMATORS)
        check.seed("seed", self.seed)
        if self.examples is not None:
            if n_train is None:
                check.positive_int("examples", self.examples)
            else:
                check.int_in("examples", self.examples, 1, n_train, "the training examples")
        return self

    def examples_for(self, n_train: int) -> int:
        """Examples per measurement on a training set of ``n_train``."""
        return min(DEFAULT_EXAMPLES, n_train) if self.examples is None else self.examples


@dataclass(frozen=True)
class RunNames:
    """What a run's record calls its model and data."""

    model: str = ""
    """Empty: the model's class name."""
    data: str = ""


def track_noise_scale(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train: TensorData,
    val: TensorData,
    settings: NoiseSettings,
    names: RunNames | None = None,
    on_point: Callable[[NoisePoint], None] | None = None,
) -> NoiseRun:
    """Train ``model`` as ``settings`` say (``training.loop.train_trial``) and measure
    B_simple at every check.

    On a DDP model (world > 1) ``settings.batch_size`` is the batch of each rank, the loop
    shards and reduces (``training.data_parallel.DataParallel``), and the estimator (auto or
    two-batch) is the free one of the all-reduce, measured at every step; per-example
    measures at the checks as in one process."""
    settings.check(len(train))
    check_model_fits(
        distributed.unwrap(model),
        loss_fn,
        train.x[: settings.batch_size],
        train.y[: settings.batch_size],
        targets=(train.y, val.y),
    )
    data_parallel = distributed.is_ddp(model) and distributed.world_size() > 1
    if not data_parallel:
        model = distributed.unwrap(model)  # one process: DDP adds nothing
    started = time.perf_counter()
    world = distributed.world_size() if data_parallel else 1
    if data_parallel and settings.batch_size * world > len(train):
        raise InvalidParameterError(
            "batch_size",
            f"at most the training examples over the ranks ({len(train)} / {world})",
            settings.batch_size,
        )
    measurements: _Measurements
    if data_parallel and settings.estimator in ("auto", "two-batch"):
        measurements = _OverRanks(model, world)
    else:
        measurements = _AtChecks(distributed.unwrap(model), loss_fn, train, settings)
    points: list[NoisePoint] = []
    examples = 0

    def on_check(point: CurvePoint, progress: float) -> None:
        nonlocal examples
        measured = measurements.at_check(point)
        if measured is None:
            return
        found, smoothed = measured
        examples = found.examples or examples
        points.append(noise_point(point, found, smoothed))
        if on_point is not None:
            on_point(points[-1])

    hooks = TrialHooks(
        on_check=on_check,
        on_step=measurements.after_step,
        sharding=DataParallel() if data_parallel else OneProcess(),
    )
    try:
        outcome = train_trial(model, optimizer, loss_fn, train, val, None, settings.plan(), hooks)
    finally:
        measurements.close()
    names = names or RunNames()
    return NoiseRun(
        model=names.model or type(distributed.unwrap(model)).__name__,
        data=names.data,
        batch_size=settings.batch_size * world,
        lr=settings.lr,
        estimator=measurements.estimator,
        examples_per_measurement=examples,
        points=tuple(points),
        status=outcome.status,
        seconds=time.perf_counter() - started,
        world_size=world,
        diverged_at=outcome.diverged_iteration,
    )


class _Measurements(Protocol):
    """Where a run's measurements of B_simple come from."""

    estimator: str

    def at_check(self, point: CurvePoint) -> tuple[NoiseEstimate, float] | None:
        """(the measurement at this check, the smoothed B_simple so far), or None: no point."""
        ...

    def after_step(self, shard: Shard) -> None:
        """Hear the step that just ran, on this process's ``shard`` of its batch."""
        ...

    def close(self) -> None:
        """The run is over (or failed)."""
        ...


class _AtChecks:
    """A measurement at every check, the start included, on fresh training examples drawn by
    a ``NoiseMeter`` (per-example gradients, or two batch sizes: ``big_factor`` batches of
    ``batch_size`` a group)."""

    def __init__(
        self, module: nn.Module, loss_fn: LossFn, train: TensorData, settings: NoiseSettings
    ) -> None:
        self.module, self.loss_fn = module, loss_fn
        named = isinstance(train.x, Features)
        self.estimator = choose_estimator(module, settings.estimator, named_inputs=named)
        big = settings.big_factor if self.estimator == "two-batch" else 1
        groups = max(2, settings.examples_for(len(train)) // (settings.batch_size * big))
        self.meter = NoiseMeter(
            train.x,
            train.y,
            self.estimator,
            settings.batch_size,
            groups,
            settings.big_factor,
            seed=settings.seed + 1,
        )

    def at_check(self, point: CurvePoint) -> tuple[NoiseEstimate, float]:
        """The meter's measurement of the model as it stands."""
        return self.meter.measure(self.module, self.loss_fn)

    def after_step(self, shard: Shard) -> None:
        """Nothing: the steps are not measured."""

    def close(self) -> None:
        """Nothing held."""


class _OverRanks:
    """The free two-batch estimate of a data-parallel job (``training.distributed.NoiseHook``
    on the DDP ``model``): each rank's own gradient is the small batch, the all-reduced one
    the big batch; a point at each check pools the steps since the previous check, so there
    is none at the start."""

    estimator = DATA_PARALLEL_ESTIMATOR

    def __init__(self, model: nn.Module, world: int) -> None:
        self.world = world
        self.hook = distributed.NoiseHook()
        self.hook.attach(model)
        self.smoother = NoiseSmoother()

    def at_check(self, point: CurvePoint) -> tuple[NoiseEstimate, float] | None:
        """The estimate pooled over the steps since the previous check (a collective)."""
        if point.iteration == 0:
            return None
        found = two_batch_from_norms(*self.hook.collect(), self.world, self.estimator)
        return found, self.smoother.add(found)

    def after_step(self, shard: Shard) -> None:
        """Keep the step's norms with B_small = every rank's rows where the global batch
        divided evenly among the ranks (weight 1), else drop them."""
        self.hook.end_step(int(shard.x.shape[0]) if shard.weight == 1.0 else None)

    def close(self) -> None:
        """The model keeps the hook; from now on it only averages."""
        self.hook.active = False
