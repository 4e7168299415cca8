"""Building schedules from schedules: joins at iteration boundaries and warm-up."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Literal

from lrkit import validation as check
from lrkit.errors import InvalidParameterError
from lrkit.schedules.base import Schedule

WarmupMode = Literal["linear", "exp"]


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules`` one after another, switching at ``boundaries``.

    lr(t) = schedules[i](t - b_i)   for b_i <= t < b_(i+1), with b_0 = 0

    Each schedule sees its own clock starting at 0 (as optax's ``join_schedules``).

    Args:
        schedules: the schedules in order.
        boundaries: strictly increasing iterations, one fewer than ``schedules``.
    """
    parts = tuple(schedules)
    if not parts:
        raise InvalidParameterError("schedules", "a non-empty list of schedules", [])
    starts = (
        (0, *check.increasing_positive_ints("boundaries", boundaries)) if len(parts) > 1 else (0,)
    )
    if len(starts) != len(parts):
        raise InvalidParameterError(
            "boundaries",
            f"{len(parts) - 1} iterations (one fewer than the schedules)",
            list(boundaries),
        )

    def schedule(t: int) -> float:
        i = bisect.bisect_right(starts, t) - 1
        return parts[i](t - starts[i])

    return schedule


def warmup(
    schedule: Schedule,
    warmup_iters: int,
    mode: WarmupMode = "linear",
    start_factor: float | None = None,
) -> Schedule:
    """Put a warm-up in front of ``schedule``, which then starts its own clock at 0.

    With target = schedule(0) and s = start_factor, for t < warmup_iters:
        linear: lr(t) = target * (s + (1 - s) * t / warmup_iters)        (Goyal et al. 2017)
        exp:    lr(t) = target * s ** (1 - t / warmup_iters)
    and lr(t) = schedule(t - warmup_iters) after.

    Args:
        schedule: the schedule that follows the warm-up.
        warmup_iters: the length of the warm-up.
        mode: linear or exp.
        start_factor: lr(0) / target; default 0 for linear, 1e-3 for exp (which needs > 0).
    """
    warmup_iters = check.positive_int("warmup_iters", warmup_iters)
    how = check.choice("warmup_mode", mode, ("linear", "exp"))
    if start_factor is None:
        s = 0.0 if how == "linear" else 1e-3
    elif how == "linear":
        s = check.float_in(
            "warmup_start_factor", start_factor, 0.0, 1.0, low_open=False, high_open=False
        )
    else:
        s = check.float_in(
            "warmup_start_factor", start_factor, 0.0, 1.0, low_open=True, high_open=False
        )
    target = schedule(0)

    def ramp(t: int) -> float:
        fraction = t / warmup_iters
        if how == "linear":
            return target * (s + (1.0 - s) * fraction)
        return target * float(s ** (1.0 - fraction))

    return join([ramp, schedule], [warmup_iters])
