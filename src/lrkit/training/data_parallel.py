"""The training loop of a data-parallel run: ``training.loop.train_trial`` on a
``DistributedDataParallel`` model in a job of several processes.

Every rank reads the global batches of ``plan.batch_size`` x world examples in the order one
process with that batch size reads (``training.clock``), and trains on its share of each; the
training and validation losses are the means over all ranks, so every rank sees the same
checks and stops together when the loss is not finite.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.training import distributed
from lrkit.training.evaluate import LossFn
from lrkit.training.loop import OnCheck
from lrkit.training.records import CurvePoint, TrialOutcome, TrialPlan
from lrkit.training.running_loss import RunningLoss


def train_data_parallel(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train: TensorData,
    val: TensorData,
    plan: TrialPlan,
    on_check: OnCheck | None = None,
    after_backward: Callable[[int | None], None] | None = None,
    check_at_start: bool = True,
) -> TrialOutcome:
    """Train the DDP ``model`` as ``plan`` says (constant lr and batch size, no test set,
    from the start), each rank on its share of the global batches.

    ``after_backward`` hears after each backward the rows of every rank's shard, or None when
    the shards differ (the last, partial batch of an epoch may not divide evenly)."""
    started = time.perf_counter()
    module = distributed.unwrap(model)
    part, parts = distributed.rank(), distributed.world_size()
    global_plan = dataclasses.replace(plan, batch_size=plan.batch_size * parts)
    clock = global_plan.clock(len(train), [plan.seed], train.x.device)
    points = [CurvePoint(0, 0.0, math.nan, *distributed.evaluate_over_ranks(module, loss_fn, val))]
    if on_check is not None and check_at_start:
        on_check(points[0], 0.0)
    losses = RunningLoss(1, train.x.device)
    status, diverged_at = "done", None
    model.train()
    for step in clock:
        index = step.examples[0]
        x, y, weight = distributed.shard(train.x[index], train.y[index], part, parts)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if weight != 1.0:
            loss = loss * weight
        loss.backward()  # type: ignore[no-untyped-call]
        if after_backward is not None:
            after_backward(int(x.shape[0]) if index.numel() % parts == 0 else None)
        optimizer.step()
        losses.add(loss)
        if step.check:
            losses.over_ranks()
            interval = losses.read(step.iteration)
            (diverged_at,) = interval.diverged_at
            if diverged_at is not None:
                status = "diverged"
                break
            losses.restart(1)
            val_loss, val_accuracy = distributed.evaluate_over_ranks(module, loss_fn, val)
            if not math.isfinite(val_loss):  # as in ``training.loop``
                status, diverged_at = "diverged", step.iteration
                break
            points.append(
                CurvePoint(step.iteration, step.progress, interval.mean[0], val_loss, val_accuracy)
            )
            if on_check is not None:
                on_check(points[-1], step.progress)
    return TrialOutcome(status, diverged_at, tuple(points), None, time.perf_counter() - started)
