"""One training step on one batch, shared by everything that trains a single model: the trial
loop (``training.loop``), the coordinate check (``laws.transfer``) and the step-time
measurement (``batchsize.throughput``).

A step is: zero the gradients (``set_to_none``), forward, loss, backward, optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lrkit.data.features import Inputs
from lrkit.training.evaluate import LossFn
from lrkit.training.outputs import batch_loss

MakeOptimizer = Callable[[nn.Module], torch.optim.Optimizer]
"""A model's optimizer, made fresh for it."""


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: Inputs,
    y: torch.Tensor,
    weight: float = 1.0,
) -> torch.Tensor:
    """Train ``model`` one step on the batch ``(x, y)``; return the batch's loss (detached
    by the caller as it needs). ``weight`` scales the loss before the backward pass: a
    data-parallel rank's share of an uneven global batch (``training.distributed.Shard``);
    at 1 the loss is left as it is."""
    optimizer.zero_grad(set_to_none=True)
    loss = batch_loss(model, loss_fn, x, y)
    if weight != 1.0:
        loss = loss * weight
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    return loss
