"""What a trial is and what it gives: its plan, the points of its curve, its outcome, and a
checkpoint to go on from. Frozen dataclasses shared by every training loop, the engines, the
store and the figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lrkit.schedules.base import Schedule
from lrkit.schedules.batch_size import BatchSizeSchedule
from lrkit.training.clock import Clock, Position


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
    checkpoint: Checkpoint | None = None
    """Where a finished trial stopped, when its plan asked to keep it (to train it further)."""


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
    start: Checkpoint | None = None
    """Go on from this checkpoint (up to ``epochs`` in all) instead of from the model as it is."""
    keep_checkpoint: bool = False
    """Hand back a checkpoint at the end (``TrialOutcome.checkpoint``), to go on from later."""
    accumulation_steps: int = 1
    """Micro-batches each batch is trained in (gradient accumulation, ``training.step``): the
    same steps at a fraction of the memory."""

    def clock(self, n: int, seeds: Sequence[int], device: torch.device) -> Clock:
        """The steps of this plan over ``n`` examples, in the orders of ``seeds``."""
        return Clock(
            n,
            self.epochs,
            self.eval_every,
            self.batch_size,
            seeds,
            device,
            self.batch_size_schedule,
            self.start.position if self.start is not None else None,
        )


@dataclass(frozen=True)
class Checkpoint:
    """A trial between two steps: weights, optimizer state, position and curve so far."""

    model: dict[str, torch.Tensor]
    """The model's ``state_dict``, on the CPU."""
    optimizer: dict[str, Any]
    """The optimizer's ``state_dict`` (torch's format, e.g. SGD's ``momentum_buffer``), on the
    CPU."""
    position: Position
    points: tuple[CurvePoint, ...]
    """The checks so far, the initial one first."""
    seconds: float
    """Training time so far."""
