"""Checkpoints: where a trial stopped, so that it can go on later ("these trials for k more
epochs") on any engine, with exactly the steps it would have taken had it never stopped.

A checkpoint holds the model's weights and the optimizer's state in PyTorch's own
``state_dict`` formats (on the CPU, so it crosses processes and devices), the run's
:class:`~lrkit.training.clock.Position` in its data, and the curve so far.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lrkit.training.clock import Position
from lrkit.training.records import Checkpoint, CurvePoint


def on_cpu(value: Any) -> Any:
    """A copy of a (nested) state dict with every tensor cloned to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(v) for v in value)
    return value


def take_checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    position: Position,
    points: tuple[CurvePoint, ...],
    seconds: float,
) -> Checkpoint:
    """Capture ``model`` and ``optimizer`` as they are now."""
    return Checkpoint(
        on_cpu(model.state_dict()), on_cpu(optimizer.state_dict()), position, points, seconds
    )


def load_checkpoint(
    checkpoint: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Put the checkpoint's weights into ``model`` and its state into ``optimizer`` (a fresh
    one over ``model``'s parameters, of the type that wrote the checkpoint)."""
    model.load_state_dict(checkpoint.model)
    optimizer.load_state_dict(on_cpu(checkpoint.optimizer))
