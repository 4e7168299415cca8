"""Reading a range test's curve: suggestion rules over (lrs, losses) arrays.

Each rule is a separate function of the learning rates tried (increasing) and the loss at
each, returning a learning rate, or None when the curve does not support an answer. They
see only finite losses, in order, up to the first non-finite one.

- ``steepest``: where the loss falls fastest against log(lr) (Smith 2017; torch-lr-finder's
  and Lightning's suggestion).
- ``minimum``: a tenth of the lr with the lowest loss (fastai's ``minimum``).
- ``valley``: the middle of the longest descent of the curve (fastai's default ``valley``).
- ``turning_point``: the lr at which the loss stops falling and starts to rise, times a
  safety factor (the textbook's reading of its figure; narrowing rounds refine the turn).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lrkit import validation as check
from lrkit.errors import LrkitValueError

FloatArray = npt.NDArray[np.float64]
SuggestionRule = Callable[[Sequence[float], Sequence[float]], float | None]

TURNING_POINT_SAFETY = 0.5
"""Default fraction of the turning point that ``turning_point`` suggests."""


def _curve(lrs: Sequence[float], losses: Sequence[float]) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(lrs, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise LrkitValueError(
            f"lrs and losses must be 1-D and the same length, got {x.shape} and {y.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(y))
    end = int(bad[0]) if bad.size else y.size
    return x[:end], y[:end]


def steepest(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """The lr at which d(loss)/d(log10 lr) is most negative (central differences).

    Needs at least 3 points and some descent; None otherwise. An lr that appears more than
    once (segments that share an end point) counts once, at its mean loss.
    """
    x, y = _curve(lrs, losses)
    unique, where = np.unique(x, return_inverse=True)
    if unique.size < x.size:
        y = np.bincount(where, weights=y) / np.bincount(where)
        x = unique
    if x.size < 3:
        return None
    slope = np.gradient(y, np.log10(x))
    i = int(np.argmin(slope))
    return float(x[i]) if slope[i] < 0 else None


def minimum(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """A tenth of the lr at which the loss is lowest.

    lr = argmin(loss) / 10
    """
    x, y = _curve(lrs, losses)
    if x.size == 0:
        return None
    return float(x[int(np.argmin(y))] / 10.0)


def valley(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """The middle of the curve's longest descent.

    With L the length of the longest strictly decreasing subsequence of losses and e the
    index where it ends, the valley is the run of L points ending at e (a flat stretch before
    the descent does not widen it); the suggestion is the tried lr nearest to the valley's
    geometric middle. None when no two points descend.
    """
    x, y = _curve(lrs, losses)
    if x.size < 2:
        return None
    length = decreasing_run_lengths(y)
    end = int(np.argmax(length))
    if length[end] < 2:
        return None
    start = end - int(length[end]) + 1
    middle = math.sqrt(x[start] * x[end])
    return float(x[start + int(np.argmin(np.abs(np.log(x[start : end + 1] / middle))))])


def decreasing_run_lengths(y: FloatArray) -> npt.NDArray[np.int64]:
    """length[i]: the longest strictly decreasing subsequence of ``y`` that ends at i.

    Patience sorting on -y, O(n log n): tails[k] is the smallest last value of an increasing
    subsequence of -y of length k + 1 seen so far.
    """
    tails: list[float] = []
    length = np.empty(y.size, dtype=np.int64)
    for i, value in enumerate((-y).tolist()):
        k = bisect.bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
        else:
            tails[k] = value
        length[i] = k + 1
    return length


@dataclass(frozen=True)
class TurningPoint:
    """Where the loss stops falling and starts to rise, and the lr suggested below it."""

    index: int
    lr: float
    suggested_lr: float


def running_median3(y: FloatArray) -> FloatArray:
    """Each point replaced by the median of itself and its two neighbours (ends kept)."""
    if y.size < 3:
        return y.copy()
    out = y.copy()
    out[1:-1] = np.median(np.stack([y[:-2], y[1:-1], y[2:]]), axis=0)
    return out


def find_turning_point(
    lrs: Sequence[float], losses: Sequence[float], safety: float = TURNING_POINT_SAFETY
) -> TurningPoint | None:
    """The lowest point of the curve, provided the loss rises after it.

    turn = argmin(running_median3(loss)) over the finite prefix (a lone dip is noise, not a
    turn); suggested lr = safety * lr[turn]. None when the lowest point is the last one (the
    loss never rose: widen the range). A curve that ends in a non-finite loss counts as rising
    at the end.
    """
    safety = check.float_in("safety", safety, 0.0, 1.0, low_open=True, high_open=False)
    x, y = _curve(lrs, losses)
    if x.size == 0:
        return None
    # Lowest median; among equal medians (a median flattens the bottom) the lowest raw loss.
    i = int(np.lexsort((y, running_median3(y)))[0])
    rises = i < x.size - 1 or len(losses) > x.size
    if not rises:
        return None
    return TurningPoint(i, float(x[i]), float(x[i] * safety))


def turning_point(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """The turning point's suggested lr (``find_turning_point``, default safety)."""
    found = find_turning_point(lrs, losses)
    return None if found is None else found.suggested_lr


SUGGESTIONS: Mapping[str, SuggestionRule] = {
    "turning_point": turning_point,
    "valley": valley,
    "steepest": steepest,
    "minimum": minimum,
}
"""Every rule by name; the first is the default."""

DEFAULT_SUGGESTION = next(iter(SUGGESTIONS))


def suggest_all(lrs: Sequence[float], losses: Sequence[float]) -> dict[str, float | None]:
    """Every rule's suggestion for one curve."""
    return {name: rule(lrs, losses) for name, rule in SUGGESTIONS.items()}
