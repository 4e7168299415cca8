"""The contract every engine keeps. Sweeps, the race of ``lrkit advise`` and the ladders of
``lrkit laws`` hand trials to an engine through it, and may swap one engine for another.

**A trial** is a :class:`TrialJob`: its key, its :class:`~lrkit.training.loop.TrialPlan`
(learning rate or schedule, batch size or its schedule, how many epochs in all, how often to
check, the seed of its initial weights and data order) and its optimizer. A plan that starts
from a checkpoint (``plan.start``) goes on from there up to ``plan.epochs``; with
``plan.keep_checkpoint`` the outcome hands back a checkpoint to go on from later: this is how
"these trials for k more epochs" runs, on any engine (checkpoints are in PyTorch's own formats,
so a trial may continue on another engine than the one that started it).

**What trials share** is a :class:`TrainingSetup`: the model factory, the loss, the data and
the device.

**An engine** runs a sequence of jobs (``Engine.run``) in any grouping and order it likes
(one at a time, stacks of one batch size, Ray tasks) and reports through
:class:`EngineEvents`, always in the caller's process and thread:

- ``on_start(keys)`` before a group of trials begins training;
- ``on_check(key, point, progress)`` at each check of a trial, where the engine can (progress
  display only: a remote engine may send none);
- ``on_done(key, outcome)`` exactly once per job, as soon as that trial has ended (a stack
  reports a diverged trial at once, the others when the stack ends).

**Who writes results**: the caller, in ``on_done``; an engine never touches a store, so there
is a single writer however many processes train.

**A trial that raises** ends as a ``failed`` outcome whose ``error`` is the exception's type
and message (:func:`failed_outcome`), reported through ``on_done`` like any other; the
engine goes on with the other jobs. A stack that raises fails every trial in it that had not
ended. A failure of the engine itself (a worker process killed, Ray unreachable) raises
``RuntimeError`` from ``run``; jobs already reported are final, the others were not run.
An exception raised by a callback (e.g. the store cannot be written) stops the engine and
propagates, as does ``KeyboardInterrupt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.sweep.definition import TrialKey
from lrkit.training.evaluate import LossFn
from lrkit.training.optimizers import OptimizerFactory, make_optimizer
from lrkit.training.records import CurvePoint, TrialOutcome, TrialPlan

STACKABLE_OPTIMIZERS = ("sgd", "momentum")
"""The optimizers the vectorized engine implements (without --optimizer-args)."""


@dataclass(frozen=True)
class TrialJob:
    """One trial to train: which it is, how it trains, and with which optimizer."""

    key: TrialKey
    plan: TrialPlan
    optimizer: str
    """sgd, momentum, adam, adamw or ``module:Class`` (``training.optimizers``)."""
    momentum: float = 0.0
    weight_decay: float = 0.0
    optimizer_args: str | None = None
    """JSON keyword arguments of the optimizer besides the lr."""
    optimizer_factory: OptimizerFactory | None = None
    """(parameters, lr) -> optimizer, in place of the name (the Python API's form)."""

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The trial's optimizer over ``model`` at the plan's lr."""
        if self.optimizer_factory is not None:
            return self.optimizer_factory(model.parameters(), self.plan.lr)
        return make_optimizer(
            self.optimizer,
            model,
            self.plan.lr,
            self.momentum,
            self.weight_decay,
            self.optimizer_args,
        )

    @property
    def stackable(self) -> bool:
        """Whether the vectorized engine can train it: plain or momentum SGD, named, with no
        other arguments."""
        return (
            self.optimizer in STACKABLE_OPTIMIZERS
            and self.optimizer_factory is None
            and not self.optimizer_args
        )


@dataclass(frozen=True)
class TrainingSetup:
    """What every trial of a run shares."""

    make_model: Callable[[int], nn.Module]
    """seed -> a fresh model (on the CPU; engines move it to ``device``)."""
    loss_fn: LossFn
    train: TensorData
    val: TensorData
    test: TensorData | None
    device: torch.device

    def on(self, device: torch.device) -> TrainingSetup:
        """The same setup with its data on ``device``."""
        return TrainingSetup(
            self.make_model,
            self.loss_fn,
            self.train.to(device),
            self.val.to(device),
            self.test.to(device) if self.test is not None else None,
            device,
        )


OnStart = Callable[[Sequence[TrialKey]], None]
OnCheck = Callable[[TrialKey, CurvePoint, float], None]
OnDone = Callable[[TrialKey, TrialOutcome], None]


@dataclass(frozen=True)
class EngineEvents:
    """The engine's reports, heard in the caller's process (see the module's contract)."""

    on_done: OnDone
    on_start: OnStart | None = None
    on_check: OnCheck | None = None


class Engine(Protocol):
    """Runs trials and reports them as the contract says."""

    name: str
    """sequential, vectorized or ray."""

    def run(self, jobs: Sequence[TrialJob], setup: TrainingSetup, events: EngineEvents) -> None:
        """Train every job; each outcome reaches ``events.on_done`` once."""
        ...


def failed_outcome(
    exc: BaseException, seconds: float, points: tuple[CurvePoint, ...] = ()
) -> TrialOutcome:
    """What a trial that raised becomes: status failed, the error as ``Type: message``."""
    message = " ".join(str(exc).split())
    error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return TrialOutcome("failed", None, points, None, seconds, error=error)
