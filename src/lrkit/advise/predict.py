"""Where a learning curve is headed (torch-free): the validation metric a run would reach at
the full budget, from the checks it has made so far.

Why: part-way through a run at a fixed learning rate, a large rate is often ahead, having
made fast progress to the level its noise allows, while a smaller one is still improving and
ends better; judged by where they stand, a short race picks the large rate (short-horizon
bias; see Bjorck et al. 2025 on the best rate falling with the horizon). Judged by where their
curves are headed, it does not.

The model, for the metric's "error" e(t) (1 - accuracy, or the loss) at epoch t:

    e(t) = a + b * t ** (-c),   a >= 0, b >= 0, c in [C_MIN, C_MAX]

a saturating power law (the form of learning curves in Domhan et al. 2015's and Kaplan et
al. 2020's fits): the curve falls as a power of the time and flattens towards a floor a that
the learning rate's noise sets. It is fitted by least squares to the later checks (the first
``SKIP`` of them, the initial transient, left out), c on a grid and (a, b) in closed form for
each c; the forecast is e(horizon). A curve that has turned upwards (validation loss rising,
overfitting) is not a falling power law: where the last checks rise, the forecast continues
their rise instead (a straight line in log t through the recent half).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

C_MIN, C_MAX = 0.05, 3.0
"""The range of the power law's exponent."""
C_GRID = np.geomspace(C_MIN, C_MAX, 60)
SKIP = 1 / 3
"""Fraction of the checks, the earliest, left out of the fit."""
MIN_POINTS = 3
"""Checks needed to forecast at all (with fewer, the forecast is the last value)."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Forecast:
    """The predicted metric at the horizon, and how noisy the curve is around its fit."""

    value: float
    spread: float
    """Standard deviation of the checks around the fitted curve, in the metric's units (nan
    with too few checks)."""
    rising: bool = False
    """The curve had turned upwards: the forecast continues the rise."""


def to_error(metric: str, values: Sequence[float]) -> FloatArray:
    """The metric as an error that falls as training improves: 1 - accuracy, or the loss."""
    y = np.asarray(values, dtype=np.float64)
    return 1.0 - y if metric == "accuracy" else y


def from_error(metric: str, error: float) -> float:
    """Back from the error to the metric, clipped to what the metric can be."""
    if metric == "accuracy":
        return float(min(1.0, max(0.0, 1.0 - error)))
    return float(max(0.0, error))


def fit_power_law(t: FloatArray, y: FloatArray) -> tuple[float, float, float, float]:
    """(a, b, c, sum of squared residuals) of e(t) = a + b t^-c, a, b >= 0, least squares:
    c on a grid, then refined by golden-section search between the best one's neighbours."""

    def at(c: float) -> tuple[float, float, float, float]:
        x = t ** (-c)
        a, b = _nonnegative_line(x, y)
        return a, b, c, float(np.sum((y - a - b * x) ** 2))

    fits = [at(float(c)) for c in C_GRID]
    i = min(range(len(fits)), key=lambda k: fits[k][3])
    low, high = math.log(C_GRID[max(i - 1, 0)]), math.log(C_GRID[min(i + 1, len(C_GRID) - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(30):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if at(math.exp(left))[3] < at(math.exp(right))[3]:
            high = right
        else:
            low = left
    return min(fits[i], at(math.exp((low + high) / 2)), key=lambda f: f[3])


def _nonnegative_line(x: FloatArray, y: FloatArray) -> tuple[float, float]:
    """min ||y - a - b x|| with a, b >= 0 (the least-squares line, else its best edge)."""
    xm, ym = float(np.mean(x)), float(np.mean(y))
    vx = float(np.sum((x - xm) ** 2))
    b = float(np.sum((x - xm) * (y - ym)) / vx) if vx > 0 else 0.0
    a = ym - b * xm
    if a >= 0 and b >= 0:
        return a, b
    candidates = [(max(ym, 0.0), 0.0)]  # b = 0: a flat line at the mean
    xx = float(np.dot(x, x))
    if xx > 0:
        candidates.append((0.0, max(float(np.dot(x, y)) / xx, 0.0)))  # a = 0: through 0
    return min(candidates, key=lambda ab: float(np.sum((y - ab[0] - ab[1] * x) ** 2)))


def forecast(
    epochs: Sequence[float], values: Sequence[float], horizon: float, metric: str
) -> Forecast:
    """The metric (accuracy or loss) at epoch ``horizon`` of a run whose checks at
    ``epochs`` measured ``values`` (non-finite values end the usable curve)."""
    t = np.asarray(epochs, dtype=np.float64)
    e = to_error(metric, values)
    finite = np.isfinite(e)
    end = e.size if finite.all() else int(np.argmin(finite))  # the run diverged there
    t, e = t[:end], e[:end]
    t, e = t[t > 0], e[t > 0]
    if t.size == 0:
        return Forecast(math.nan, math.nan)
    last = from_error(metric, float(e[-1]))
    if t.size < MIN_POINTS:
        return Forecast(last, math.nan)
    start = min(int(t.size * SKIP), t.size - MIN_POINTS)
    t, e = t[start:], e[start:]
    a, b, c, sse = fit_power_law(t, e)
    spread = math.sqrt(sse / max(t.size - 3, 1))
    if horizon <= t[-1] * (1 + 1e-9):  # no further to go: the measured value
        return Forecast(last, spread)
    recent = max(MIN_POINTS, t.size // 2)
    slope, intercept = np.polyfit(np.log(t[-recent:]), e[-recent:], 1)
    if slope > 0 and a + b * t[-1] ** (-c) < e[-1] - spread:
        # The curve has turned upwards beyond its noise: continue the rise.
        rise = slope * math.log(horizon) + intercept
        return Forecast(from_error(metric, float(rise)), spread, rising=True)
    return Forecast(from_error(metric, float(a + b * horizon ** (-c))), spread)
