"""The trial loop: one model trained as a ``TrialPlan`` says, by one process or by the ranks
of a data-parallel job, with any optimizer over in-memory batches; a check every
``eval_every`` epochs (training loss since the last check, validation loss and accuracy),
test accuracy at the end. Its steps and checks come from ``training.clock``, which the
vectorized engine reads too; each step is ``training.step.train_step``.

What differs between one process and a data-parallel job is a :class:`Sharding`: which rows
of each global batch this process trains on, how the per-process losses and evaluations
become the trial's (reductions over the ranks), and which global RNG the model draws on.
:class:`OneProcess` is the identity; ``training.data_parallel.DataParallel`` shards and
reduces. Callers hear the checks (``TrialHooks.on_check``) and each step's rows
(``TrialHooks.on_step``).

A trial whose loss is not finite stops at the next check and is reported as diverged at the
first iteration whose loss was not finite, or at the check, where the validation loss is not
finite (a run that ended "done" with a nan loss would be ranked on an accuracy at chance).
Between checks the losses are summed on the device (``training.running_loss``), so a GPU is
not synchronised every step and memory does not grow with the steps between checks. A trial
can start from a checkpoint and hand one back (``TrialPlan.start``, ``keep_checkpoint``):
trained to E1 and then on to E2, it takes the steps of one trained to E2 at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from lrkit.data.features import Inputs
from lrkit.data.tensors import TensorData
from lrkit.training.checkpoint import load_checkpoint, take_checkpoint
from lrkit.training.distributed import Shard
from lrkit.training.evaluate import LossFn, evaluate
from lrkit.training.records import Checkpoint, CurvePoint, TrialOutcome, TrialPlan
from lrkit.training.running_loss import RunningLoss
from lrkit.training.step import train_step

__all__ = [
    "Checkpoint",
    "CurvePoint",
    "OnCheck",
    "OnStep",
    "OneProcess",
    "Sharding",
    "TrialHooks",
    "TrialOutcome",
    "TrialPlan",
    "train_trial",
]

OnCheck = Callable[[CurvePoint, float], None]
"""Called at every check with the point and the training progress in epochs."""
OnStep = Callable[[Shard], None]
"""Called after every step with the rows this process trained on."""


class Sharding(Protocol):
    """How the processes that train a trial share it."""

    def global_plan(self, plan: TrialPlan) -> TrialPlan:
        """The plan whose batches the clock cuts (the global batches of all processes)."""
        ...

    def shard(self, x: Inputs, y: torch.Tensor) -> Shard:
        """This process's rows of the global batch ``(x, y)``, and their loss's weight."""
        ...

    def reduce(self, losses: RunningLoss) -> None:
        """Make the interval's losses the trial's (called at every check, before reading)."""
        ...

    def evaluate(self, model: nn.Module, loss_fn: LossFn, data: TensorData) -> tuple[float, float]:
        """The trial's (mean loss, accuracy) on ``data``."""
        ...

    def rng(self, plan: TrialPlan, device: torch.device) -> AbstractContextManager[None]:
        """The global RNG the model draws on as it trains (dropout masks)."""
        ...


class OneProcess:
    """One process trains the whole trial: the identity hooks."""

    def global_plan(self, plan: TrialPlan) -> TrialPlan:
        """``plan`` itself."""
        return plan

    def shard(self, x: Inputs, y: torch.Tensor) -> Shard:
        """The whole batch, weight 1."""
        return Shard(x, y, 1.0)

    def reduce(self, losses: RunningLoss) -> None:
        """Nothing to reduce."""

    def evaluate(self, model: nn.Module, loss_fn: LossFn, data: TensorData) -> tuple[float, float]:
        """``training.evaluate.evaluate`` on all of ``data``."""
        return evaluate(model, loss_fn, data)

    @contextmanager
    def rng(self, plan: TrialPlan, device: torch.device) -> Iterator[None]:
        """A fork of the global RNG seeded by the plan (``trial_rng_seed``): a trial is the
        same in any process and after any history, and the caller's RNG is as it was."""
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(trial_rng_seed(plan))
            yield


@dataclass(frozen=True)
class TrialHooks:
    """What the trial loop calls besides training: the checks' listener, the steps' listener,
    and how the trial is shared among processes."""

    on_check: OnCheck | None = None
    """At every check, and at the start of a trial that does not go on from a checkpoint."""
    on_step: OnStep | None = None
    """After every step, with this process's rows of its batch."""
    sharding: Sharding = field(default_factory=OneProcess)


def train_trial(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train: TensorData,
    val: TensorData,
    test: TensorData | None,
    plan: TrialPlan,
    hooks: TrialHooks | None = None,
) -> TrialOutcome:
    """Train ``model`` as ``plan`` says; return its curve and final status.

    The clock reads the global batches of ``hooks.sharding.global_plan(plan)``; each step
    trains on this process's shard of one (``train_step``, its loss weighted by the shard's
    weight). What the model draws from the global RNG as it trains comes from
    ``hooks.sharding.rng`` (one process: a fork seeded by the plan, ``trial_rng_seed``)."""
    hooks = hooks or TrialHooks()
    sharding = hooks.sharding
    with sharding.rng(plan, train.x.device):
        started = time.perf_counter()
        clock = sharding.global_plan(plan).clock(len(train), [plan.seed], train.x.device)
        points = _first_points(model, optimizer, loss_fn, val, plan, hooks)
        losses = RunningLoss(1, train.x.device)
        status, diverged_at = "done", None
        model.train()
        for step in clock:
            index = step.examples[0]
            if plan.schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = plan.schedule(step.iteration - 1)
            shard = sharding.shard(train.x[index], train.y[index])
            losses.add(train_step(model, optimizer, loss_fn, *shard, plan.accumulation_steps))
            if hooks.on_step is not None:
                hooks.on_step(shard)
            if step.check:
                sharding.reduce(losses)
                interval = losses.read(step.iteration)
                (diverged_at,) = interval.diverged_at
                if diverged_at is not None:
                    status = "diverged"
                    break
                losses.restart(1)
                val_loss, val_accuracy = sharding.evaluate(model, loss_fn, val)
                if not math.isfinite(val_loss):  # the training loss finite, the outputs not
                    status, diverged_at = "diverged", step.iteration
                    break
                points.append(
                    CurvePoint(
                        step.iteration, step.progress, interval.mean[0], val_loss, val_accuracy
                    )
                )
                if hooks.on_check is not None:
                    hooks.on_check(points[-1], step.progress)
        done = status == "done"
        test_accuracy = None
        if test is not None and done:
            test_accuracy = sharding.evaluate(model, loss_fn, test)[1]
        seconds = time.perf_counter() - started + (plan.start.seconds if plan.start else 0.0)
        checkpoint = None
        if plan.keep_checkpoint and done:
            checkpoint = take_checkpoint(model, optimizer, clock.position, tuple(points), seconds)
    return TrialOutcome(
        status, diverged_at, tuple(points), test_accuracy, seconds, checkpoint=checkpoint
    )


def _first_points(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    val: TensorData,
    plan: TrialPlan,
    hooks: TrialHooks,
) -> list[CurvePoint]:
    """The curve before the first step: the checkpoint's (its weights and optimizer state
    loaded), or the model's evaluation as it is (heard by ``on_check``)."""
    if plan.start is not None:
        load_checkpoint(plan.start, model, optimizer)
        return list(plan.start.points)
    first = CurvePoint(0, 0.0, math.nan, *hooks.sharding.evaluate(model, loss_fn, val))
    if hooks.on_check is not None:
        hooks.on_check(first, 0.0)
    return [first]


def trial_rng_seed(plan: TrialPlan) -> int:
    """The global RNG's seed for a trial: its seed, and where it starts (a run resumed from a
    checkpoint draws on from a seed of its own, not the first steps' masks again)."""
    start = plan.start.position.iteration if plan.start is not None else 0
    return (plan.seed * 1_000_003 + start) % 2**63
