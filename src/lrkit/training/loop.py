"""The plain training loop of a sweep trial: SGD over in-memory batches, a check every
``eval_every`` epochs (training loss since the last check, validation loss and accuracy),
test accuracy at the end.

A trial whose loss is not finite stops at the next check and is reported as diverged at the
first iteration whose loss was not finite. Losses stay on the device between checks, so a
GPU is not synchronised every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.schedules.base import Schedule
from lrkit.schedules.batch_size import BatchSizeSchedule
from lrkit.training.evaluate import LossFn, evaluate

OnCheck = Callable[["CurvePoint", float], None]
"""Called at every check with the point and the training progress in epochs."""


@dataclass(frozen=True)
class CurvePoint:
    """One check: where training stood and how the model did."""

    iteration: int
    epoch: float
    train_loss: float
    """Mean training loss over the iterations since the previous check (nan at iteration 0)."""
    val_loss: float
    val_accuracy: float


@dataclass(frozen=True)
class TrialOutcome:
    """What one training run produced."""

    status: str
    """done, diverged (the loss stopped being finite), or failed (training raised)."""
    diverged_iteration: int | None
    points: tuple[CurvePoint, ...]
    test_accuracy: float | None
    seconds: float
    error: str | None = None
    """For a failed trial: what was raised, as ``TypeName: message``."""


@dataclass(frozen=True)
class TrialPlan:
    """How to train: the learning rate (or a schedule of it), the batch size (or a schedule of
    it), how long, and how often to check."""

    lr: float
    batch_size: int
    epochs: float
    eval_every: float
    seed: int
    schedule: Schedule | None = None
    """lr(iteration); None trains at ``lr`` throughout."""
    batch_size_schedule: BatchSizeSchedule | None = None
    """batch size(epoch); None keeps ``batch_size``."""


def first_non_finite(recent: torch.Tensor, iteration: int) -> int | None:
    """The iteration of the first non-finite loss among ``recent``, the losses of the
    iterations up to ``iteration`` since the last check; None when all are finite."""
    bad = torch.nonzero(~torch.isfinite(recent))
    return iteration - len(recent) + int(bad[0, 0]) + 1 if bad.numel() else None


def train_trial(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train: TensorData,
    val: TensorData,
    test: TensorData | None,
    plan: TrialPlan,
    on_check: OnCheck | None = None,
) -> TrialOutcome:
    """Train ``model`` as ``plan`` says; return its curve and final status."""
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(plan.seed)
    n = len(train)
    device = train.x.device
    points = [CurvePoint(0, 0.0, math.nan, *evaluate(model, loss_fn, val))]
    if on_check is not None:
        on_check(points[0], 0.0)
    losses: list[torch.Tensor] = []
    iteration, next_check, epoch = 0, plan.eval_every, 0
    status, diverged_at = "done", None
    model.train()
    while epoch < plan.epochs and status == "done":
        batch_size = (
            plan.batch_size_schedule(epoch) if plan.batch_size_schedule else plan.batch_size
        )
        order = torch.randperm(n, generator=generator).to(device)
        batches = range(0, n, batch_size)
        for b, start in enumerate(batches):
            index = order[start : start + batch_size]
            if plan.schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = plan.schedule(iteration)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(train.x[index]), train.y[index])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.detach())
            iteration += 1
            progress = epoch + (b + 1) / len(batches)
            last = progress >= plan.epochs - 1e-9
            if progress >= next_check - 1e-9 or last:
                recent = torch.stack(losses).float()
                diverged_at = first_non_finite(recent, iteration)
                if diverged_at is not None:
                    status = "diverged"
                    break
                points.append(
                    CurvePoint(
                        iteration, progress, float(recent.mean()), *evaluate(model, loss_fn, val)
                    )
                )
                if on_check is not None:
                    on_check(points[-1], progress)
                losses = []
                while next_check <= progress + 1e-9:
                    next_check += plan.eval_every
            if last:
                break
        epoch += 1
    test_accuracy = None
    if test is not None and status == "done":
        test_accuracy = evaluate(model, loss_fn, test)[1]
    return TrialOutcome(
        status, diverged_at, tuple(points), test_accuracy, time.perf_counter() - started
    )
