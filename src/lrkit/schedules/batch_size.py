"""Batch-size schedules: grow the batch instead of decaying the learning rate.

S. L. Smith, P.-J. Kindermans, C. Ying & Q. V. Le, "Don't Decay the Learning Rate, Increase
the Batch Size" (ICLR 2018). SGD's noise scale is g = lr * N / B (N training examples, batch
size B), so dividing lr by a factor and multiplying B by it give the same g; the second needs
fewer parameter updates. Once B reaches the largest batch that fits, lr decays instead.

Batch-size schedules run on the epoch clock (a float: the sweep checks every half epoch).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lrkit import validation as check
from lrkit.errors import InvalidParameterError

BatchSizeSchedule = Callable[[float], int]
"""``batch_size(epoch) -> B``: the batch size to use in epoch ``epoch`` (``epoch >= 0``)."""

EpochSchedule = Callable[[float], float]
"""``lr(epoch) -> lr``: a learning rate on the epoch clock."""


def _check_growth(
    base_batch_size: int, factor: float, milestones: Sequence[int], max_batch_size: int | None
) -> tuple[int, float, tuple[int, ...], int | None]:
    base = check.positive_int("base_batch_size", base_batch_size)
    if factor <= 1:
        raise InvalidParameterError("factor", "a finite number > 1", factor)
    growth = check.positive_float("factor", factor)
    steps = check.increasing_positive_ints("milestones", milestones)
    cap = None if max_batch_size is None else check.positive_int("max_batch_size", max_batch_size)
    if cap is not None and cap < base:
        raise InvalidParameterError("max_batch_size", f">= base_batch_size ({base})", cap)
    return base, growth, steps, cap


def batch_size_steps(
    base_batch_size: int,
    factor: float,
    milestones: Sequence[int],
    max_batch_size: int | None = None,
) -> BatchSizeSchedule:
    """Multiply the batch size by ``factor`` at each milestone epoch, up to a cap.

    B(e) = min(round(base_batch_size * factor ** n(e)), max_batch_size)

    where n(e) is the number of milestones m with m <= e (Smith et al. 2018, section 5).

    Args:
        base_batch_size: the batch size in the first epoch.
        factor: the growth at each milestone (> 1; the paper uses 5).
        milestones: strictly increasing epochs at which the batch grows.
        max_batch_size: the largest batch allowed (no cap when None).
    """
    base, growth, steps, cap = _check_growth(base_batch_size, factor, milestones, max_batch_size)

    def schedule(epoch: float) -> int:
        size = round(base * growth ** bisect.bisect_right(steps, epoch))
        return size if cap is None else min(size, cap)

    return schedule


@dataclass(frozen=True)
class BatchSizePlan:
    """A batch-size schedule and the learning-rate schedule that goes with it (epoch clock)."""

    batch_size: BatchSizeSchedule
    lr: EpochSchedule
    growth_milestones: tuple[int, ...]
    """Milestones at which the batch grows."""
    decay_milestones: tuple[int, ...]
    """Milestones at which the batch was capped, so the learning rate decays instead."""


def increase_batch_instead_of_decay(
    base_lr: float,
    base_batch_size: int,
    factor: float,
    milestones: Sequence[int],
    max_batch_size: int,
) -> BatchSizePlan:
    """Turn a step decay (divide lr by ``factor`` at each milestone) into batch growth.

    At each milestone the batch is multiplied by ``factor`` while the result stays within
    ``max_batch_size``; at the milestones after that, the learning rate is divided by
    ``factor`` instead (Smith et al. 2018, "hybrid" schedule). Until the cap the noise scale
    lr * N / B falls exactly as in the step decay it replaces.

    Args:
        base_lr: the learning rate in the first epoch.
        base_batch_size: the batch size in the first epoch.
        factor: the step decay's divisor (> 1).
        milestones: strictly increasing epochs of the steps.
        max_batch_size: the largest batch allowed.
    """
    lr0 = check.positive_float("base_lr", base_lr)
    base, growth, steps, cap = _check_growth(base_batch_size, factor, milestones, max_batch_size)
    assert cap is not None
    grow: list[int] = []
    decay: list[int] = []
    for milestone in steps:
        if round(base * growth ** (len(grow) + 1)) <= cap:
            grow.append(milestone)
        else:
            decay.append(milestone)
    growth_steps, decay_steps = tuple(grow), tuple(decay)

    def batch_size(epoch: float) -> int:
        return round(base * growth ** bisect.bisect_right(growth_steps, epoch))

    def lr(epoch: float) -> float:
        return lr0 / growth ** bisect.bisect_right(decay_steps, epoch)

    return BatchSizePlan(batch_size, lr, growth_steps, decay_steps)
