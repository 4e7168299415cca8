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
``SKIP`` of them, the initial transient, left out), c on a grid refined by golden-section
search and (a, b) in closed form for each c; the forecast is e(horizon). A curve that has
turned upwards (validation loss rising, overfitting) is not a falling power law: where the
last checks rise, the forecast continues their rise instead (a straight line in log t through
the recent half).

Fitted alone, a short curve leaves the floor a poorly determined (a steep early fall fits a
low floor as well as a high one). The race's candidates share a model and data and differ
only in their learning rate, and for SGD near a minimum the exponent is the problem's, not the
rate's (e(t) = floor(lr) + C (lr t)^-c: the rate moves a and b, not c), so
:func:`forecast_together` fits one exponent c to all of them, each keeping its own a and b.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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


def _sse_at(t: FloatArray, y: FloatArray, c: float) -> tuple[float, float, float]:
    """(a, b, sum of squared residuals) of the best non-negative a + b t^-c."""
    x = t ** (-c)
    a, b = _nonnegative_line(x, y)
    return a, b, float(np.sum((y - a - b * x) ** 2))


def _best_exponent(total: Callable[[float], float]) -> float:
    """The c in [C_MIN, C_MAX] minimising ``total(c)``: the grid's best, refined by
    golden-section search between its neighbours."""
    errors = [total(float(c)) for c in C_GRID]
    i = min(range(len(errors)), key=errors.__getitem__)
    low, high = math.log(C_GRID[max(i - 1, 0)]), math.log(C_GRID[min(i + 1, len(C_GRID) - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(30):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if total(math.exp(left)) < total(math.exp(right)):
            high = right
        else:
            low = left
    refined = math.exp((low + high) / 2)
    return refined if total(refined) <= errors[i] else float(C_GRID[i])


def fit_power_law(t: FloatArray, y: FloatArray) -> tuple[float, float, float, float]:
    """(a, b, c, sum of squared residuals) of e(t) = a + b t^-c, a, b >= 0, least squares."""
    c = _best_exponent(lambda k: _sse_at(t, y, k)[2])
    return (*_sse_at(t, y, c)[:2], c, _sse_at(t, y, c)[2])


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


@dataclass(frozen=True)
class _Curve:
    """A curve ready to fit: its later checks (t > 0, finite, the transient left out), and its
    last usable value."""

    t: FloatArray
    e: FloatArray
    last: float
    fits: bool
    """Enough checks to fit."""


def _prepare(epochs: Sequence[float], values: Sequence[float], metric: str) -> _Curve | None:
    t = np.asarray(epochs, dtype=np.float64)
    e = to_error(metric, values)
    finite = np.isfinite(e)
    end = e.size if finite.all() else int(np.argmin(finite))  # the run diverged there
    t, e = t[:end], e[:end]
    t, e = t[t > 0], e[t > 0]
    if t.size == 0:
        return None
    last = from_error(metric, float(e[-1]))
    if t.size < MIN_POINTS:
        return _Curve(t, e, last, False)
    start = min(int(t.size * SKIP), t.size - MIN_POINTS)
    return _Curve(t[start:], e[start:], last, True)


def _extrapolate(
    curve: _Curve, a: float, b: float, c: float, sse: float, horizon: float, metric: str
) -> Forecast:
    t, e = curve.t, curve.e
    spread = math.sqrt(sse / max(t.size - 3, 1))
    if horizon <= t[-1] * (1 + 1e-9):  # no further to go: the measured value
        return Forecast(curve.last, spread)
    recent = max(MIN_POINTS, t.size // 2)
    slope, intercept = np.polyfit(np.log(t[-recent:]), e[-recent:], 1)
    if slope > 0 and a + b * t[-1] ** (-c) < e[-1] - spread:
        # The curve has turned upwards beyond its noise: continue the rise.
        rise = slope * math.log(horizon) + intercept
        return Forecast(from_error(metric, float(rise)), spread, rising=True)
    return Forecast(from_error(metric, float(a + b * horizon ** (-c))), spread)


def forecast(
    epochs: Sequence[float], values: Sequence[float], horizon: float, metric: str
) -> Forecast:
    """The metric (accuracy or loss) at epoch ``horizon`` of a run whose checks at
    ``epochs`` measured ``values`` (non-finite values end the usable curve)."""
    curve = _prepare(epochs, values, metric)
    if curve is None:
        return Forecast(math.nan, math.nan)
    if not curve.fits:
        return Forecast(curve.last, math.nan)
    return _extrapolate(curve, *fit_power_law(curve.t, curve.e), horizon, metric)


def forecast_together(
    curves: Sequence[tuple[Sequence[float], Sequence[float]]], horizon: float, metric: str
) -> list[Forecast]:
    """:func:`forecast` for runs of one model and data at several learning rates, with one
    exponent c for all (each its own a and b); a curve too short to fit is forecast alone."""
    prepared = [_prepare(epochs, values, metric) for epochs, values in curves]
    fitting = [p for p in prepared if p is not None and p.fits]
    if len(fitting) < 2:
        return [forecast(epochs, values, horizon, metric) for epochs, values in curves]
    c = _best_exponent(lambda k: sum(_sse_at(p.t, p.e, k)[2] for p in fitting))
    found = []
    for (epochs, values), curve in zip(curves, prepared, strict=True):
        if curve is None or not curve.fits:
            found.append(forecast(epochs, values, horizon, metric))
            continue
        a, b, sse = _sse_at(curve.t, curve.e, c)
        found.append(_extrapolate(curve, a, b, c, sse, horizon, metric))
    return found
