"""The plain training loop of a trial: any optimizer over in-memory batches, a check every
``eval_every`` epochs (training loss since the last check, validation loss and accuracy),
test accuracy at the end. Its steps and checks come from ``training.clock``, which the
vectorized engine and the data-parallel loop read too.

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
from collections.abc import Callable

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.training.checkpoint import load_checkpoint, take_checkpoint
from lrkit.training.evaluate import LossFn, evaluate
from lrkit.training.records import Checkpoint, CurvePoint, TrialOutcome, TrialPlan
from lrkit.training.running_loss import RunningLoss

__all__ = [
    "Checkpoint",
    "CurvePoint",
    "OnCheck",
    "TrialOutcome",
    "TrialPlan",
    "train_trial",
]

OnCheck = Callable[[CurvePoint, float], None]
"""Called at every check with the point and the training progress in epochs."""


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
    """Train ``model`` as ``plan`` says; return its curve and final status.

    What the model draws from the global RNG as it trains (dropout masks) comes from a fork
    seeded by the plan (``trial_rng_seed``), so that a trial is the same in any process and
    after any history, and the caller's RNG is as it was."""
    devices = [train.x.device] if train.x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(trial_rng_seed(plan))
        return _train_trial(model, optimizer, loss_fn, train, val, test, plan, on_check)


def trial_rng_seed(plan: TrialPlan) -> int:
    """The global RNG's seed for a trial: its seed, and where it starts (a run resumed from a
    checkpoint draws on from a seed of its own, not the first steps' masks again)."""
    start = plan.start.position.iteration if plan.start is not None else 0
    return (plan.seed * 1_000_003 + start) % 2**63


def _train_trial(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train: TensorData,
    val: TensorData,
    test: TensorData | None,
    plan: TrialPlan,
    on_check: OnCheck | None,
) -> TrialOutcome:
    started = time.perf_counter()
    clock = plan.clock(len(train), [plan.seed], train.x.device)
    if plan.start is not None:
        load_checkpoint(plan.start, model, optimizer)
        points = list(plan.start.points)
    else:
        points = [CurvePoint(0, 0.0, math.nan, *evaluate(model, loss_fn, val))]
        if on_check is not None:
            on_check(points[0], 0.0)
    losses = RunningLoss(1, train.x.device)
    status, diverged_at = "done", None
    model.train()
    for step in clock:
        index = step.examples[0]
        if plan.schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = plan.schedule(step.iteration - 1)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(train.x[index]), train.y[index])
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.add(loss)
        if step.check:
            interval = losses.read(step.iteration)
            (diverged_at,) = interval.diverged_at
            if diverged_at is not None:
                status = "diverged"
                break
            losses.restart(1)
            val_loss, val_accuracy = evaluate(model, loss_fn, val)
            if not math.isfinite(val_loss):  # the training loss finite, the model's outputs not
                status, diverged_at = "diverged", step.iteration
                break
            points.append(
                CurvePoint(step.iteration, step.progress, interval.mean[0], val_loss, val_accuracy)
            )
            if on_check is not None:
                on_check(points[-1], step.progress)
    done = status == "done"
    test_accuracy = evaluate(model, loss_fn, test)[1] if test is not None and done else None
    seconds = time.perf_counter() - started + (plan.start.seconds if plan.start else 0.0)
    checkpoint = None
    if plan.keep_checkpoint and done:
        checkpoint = take_checkpoint(model, optimizer, clock.position, tuple(points), seconds)
    return TrialOutcome(
        status, diverged_at, tuple(points), test_accuracy, seconds, checkpoint=checkpoint
    )
