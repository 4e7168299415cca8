"""When a validation curve reaches a target: measured where it did, projected where it has
not yet (pure functions of the curve's ``(epoch, value)`` checks).

``first_reached`` reads the crossing off the checks (linear between the check before and
the check that reached it). ``projected_crossing`` extends a curve that has not reached the
target by the trend of its later half, value linear in the logarithm of the epoch:

    v(e) = a + b ln e   (least squares over the checks at e >= e_last / 2)
    e*   = exp((target - a) / b)

the shape of a learning curve in mid training (accuracy and loss gain about as much from
each doubling of the training; Domhan et al. 2015 fit richer families of such curves). It
projects at most ``PROJECTION_REACH`` times the curve's length and never past ``limit`` (the
user's budget): a trend read off a stretch of the curve says little about what happens much
later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PROJECTION_REACH = 2.0
"""How far past its last check a curve is projected, as a multiple of its length."""
PROJECTION_POINTS = 3
"""The fewest finite checks in the later half that a projection is fitted to."""


def reaches(value: float, target: float, higher: bool) -> bool:
    """``value`` is at or past ``target`` in the better direction."""
    return value >= target if higher else value <= target


def first_reached(
    curve: Sequence[tuple[float, float]], target: float, higher: bool
) -> float | None:
    """The epoch at which ``curve`` ((epoch, value) checks) first reaches ``target``, linear
    between the check before and the check that reached it; None if it never does."""
    previous: tuple[float, float] | None = None
    for epoch, value in curve:
        if math.isfinite(value) and reaches(value, target, higher):
            if previous is None or not math.isfinite(previous[1]) or previous[1] == value:
                return epoch
            share = (target - previous[1]) / (value - previous[1])
            return previous[0] + min(max(share, 0.0), 1.0) * (epoch - previous[0])
        previous = (epoch, value)
    return None


def log_trend(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares ``(a, b)`` of ``value = a + b ln(epoch)`` over ``points``; None where
    the epochs do not vary."""
    xs = [math.log(e) for e, _ in points]
    ys = [v for _, v in points]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx <= 0:
        return None
    b = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return mean_y - b * mean_x, b


def projected_crossing(
    curve: Sequence[tuple[float, float]], target: float, higher: bool, limit: float
) -> float | None:
    """The epoch at which the trend of ``curve``'s later half reaches ``target`` (see the
    module's docstring), at the earliest its last check (it had not reached it there); None
    where the trend does not improve, has too few checks, or reaches the target only past
    ``PROJECTION_REACH`` times the curve's length or past ``limit`` epochs."""
    points = [(e, v) for e, v in curve if e > 0 and math.isfinite(v)]
    if not points:
        return None
    last = points[-1][0]
    later = [(e, v) for e, v in points if e >= last / 2]
    if len(later) < PROJECTION_POINTS:
        return None
    trend = log_trend(later)
    if trend is None:
        return None
    a, b = trend
    if not (b > 0 if higher else b < 0):
        return None
    reach = min(PROJECTION_REACH * last, limit)
    exponent = (target - a) / b
    if exponent > math.log(reach) + 1e-12:  # (the tolerance: reach itself is within)
        return None
    return max(math.exp(exponent), last)
