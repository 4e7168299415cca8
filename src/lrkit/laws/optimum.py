"""A group's optimum read from the band of near-best runs, not from the single best run.

Of a group's runs (learning rate, final loss), the band is those within a relative
``tolerance`` of the best loss:

    band = {lr : loss(lr) <= best * (1 + tolerance)}      (best = the least finite loss)
    lr*  = exp(mean(ln lr over the band))                 (its centre on a log scale)

Step Law (Li et al. 2025) keeps the runs within 0.25% of each group's best loss; DeepSeek
LLM (2024) fits the optimum through such a band of near-optimal runs. On a coarse grid the
single best run moves by a whole grid step with a little noise; the band's centre moves less.
Runs whose loss is not finite (diverged) never enter a band. Losses must be positive (a
relative band of a negative loss has no meaning); give a loss, not an accuracy.

The same reading gives a best batch size: the band's centre over (batch size, loss) pairs.

How closely the grid places the optimum (its reading uncertainty, on a log scale): where the
loss is a bowl symmetric in ln lr, the optimum is the centre of the window of lrs within the
tolerance, and the band is the grid's points inside that window. Each end of the window lies
somewhere in the gap between the band's end and the next lr out; taking each uniform there,
the optimum is the band's centre to within half a gap either side, distributed as the mean of
two uniforms over a gap:

    ln lr* in ln centre -+ spacing / 2        reading variance = spacing^2 / 24

with ``spacing`` the grid's local log-spacing (the mean of the two gaps; ln 2 / k for k points
an octave). On the noise-free bowls of ``tests/test_laws_fit.py`` (quarter octaves) the band
centres scatter about the truth with variance 0.0013; spacing^2 / 24 = 0.00125. (Uniform over
the band and half a gap each side, (ln(high / low) + spacing)^2 / 12, is 2.6 times the measured
scatter with noise, 0.0034: a band's width is the bowl's flatness more than the reading's
error.) ``fit.fit_law`` never lets the groups' scatter about a law fall below this: an optimum
read off a grid is never known better than the grid resolves it; the noise of the losses
moves the readings further, and the residual about the law measures that.

With repeats (several seeds at each lr), a fixed 0.25% can be narrower than the seed-to-seed
noise, so that the band holds a single lucky run. ``repeat_tolerance`` widens it to the
noise: with r repeats at each lr, mean losses m(lr) and the pooled sample variance s^2 of the
``POOLED_LRS`` lrs of least mean loss,

    tolerance = max(floor, s * sqrt(2 / r) / best)

one standard error of the difference of two means: the band holds the lrs whose mean loss
the repeats cannot tell from the best one's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lrkit import validation as check
from lrkit.errors import LrkitValueError

STEP_LAW_TOLERANCE = 0.0025
"""Step Law's band: within 0.25% of the group's best loss."""
POOLED_LRS = 5
"""The near-best lrs whose repeats give the noise of ``repeat_tolerance``."""


@dataclass(frozen=True)
class Optimum:
    """A group's best learning rate read from its band of near-best runs."""

    lr: float
    """The band's centre on a log scale."""
    low: float
    """The smallest lr in the band."""
    high: float
    """The largest lr in the band."""
    best_loss: float
    runs: int
    """Runs in the band."""
    at_edge: bool
    """The band holds the group's smallest or largest lr: the optimum may lie outside the
    grid."""
    spacing: float
    """The grid's local log-spacing about the band: the mean of the log gaps from its ends to
    the nearest lr outside it (the one gap there is at the grid's end; the band's own mean
    spacing where it holds every lr)."""
    tolerance: float = STEP_LAW_TOLERANCE
    """The band's relative width."""

    def __post_init__(self) -> None:
        check.positive_float("spacing", self.spacing)

    @property
    def reading(self) -> tuple[float, float]:
        """Where the optimum lies as far as the grid resolves it: lr * exp(-+spacing / 2)
        (the module's docstring)."""
        half = math.exp(self.spacing / 2.0)
        return self.lr / half, self.lr * half

    @property
    def reading_variance(self) -> float:
        """spacing^2 / 24: the variance of ln lr* over ``reading`` (the mean of two
        uniforms over a gap)."""
        return self.spacing**2 / 24.0

    def to_json(self, name: str = "lr") -> dict[str, object]:
        """As JSON, the centre under ``name`` (``batch_size`` for a best batch size)."""
        return {
            name: self.lr,
            "low": self.low,
            "high": self.high,
            "best_loss": self.best_loss,
            "runs": self.runs,
            "at_edge": self.at_edge,
            "tolerance": self.tolerance,
            "spacing": self.spacing,
            "reading": list(self.reading),
        }


def band_optimum(
    runs: Sequence[tuple[float, float]], tolerance: float = STEP_LAW_TOLERANCE
) -> Optimum:
    """The optimum of one group's ``runs`` ((lr, loss) pairs), see the module's docstring."""
    tolerance = check.nonnegative_float("tolerance", tolerance)
    finite = [(lr, loss) for lr, loss in runs if math.isfinite(loss)]
    if not finite:
        raise LrkitValueError("no run of the group has a finite loss: there is no optimum")
    if any(not lr > 0 for lr, _ in runs):
        raise LrkitValueError("every learning rate must be positive")
    best = min(loss for _, loss in finite)
    if not best > 0:
        raise LrkitValueError(f"losses must be positive for a relative band (best {best:g})")
    lrs = sorted({lr for lr, _ in runs})
    if len(lrs) < 2:
        raise LrkitValueError(
            "a group needs runs at two or more learning rates: one lr has no grid to read an "
            "optimum off"
        )
    band = sorted(lr for lr, loss in finite if loss <= best * (1.0 + tolerance))
    centre = math.exp(sum(math.log(lr) for lr in band) / len(band))
    centre = min(max(centre, band[0]), band[-1])  # (one run: exp(ln lr) may round off it)
    return Optimum(
        lr=centre,
        low=band[0],
        high=band[-1],
        best_loss=best,
        runs=len(band),
        at_edge=band[0] == lrs[0] or band[-1] == lrs[-1],
        spacing=grid_spacing(lrs, band[0], band[-1]),
        tolerance=tolerance,
    )


def grid_spacing(lrs: Sequence[float], low: float, high: float) -> float:
    """The log-spacing of the sorted distinct ``lrs`` about the band [low, high]: the mean of
    the log gaps from ``low`` to the lr below it and from ``high`` to the lr above it (the one
    gap there is where the band reaches an end of the grid; the band's own mean spacing where
    it reaches both)."""
    gaps = []
    below = [lr for lr in lrs if lr < low]
    above = [lr for lr in lrs if lr > high]
    if below:
        gaps.append(math.log(low / below[-1]))
    if above:
        gaps.append(math.log(above[0] / high))
    if gaps:
        return sum(gaps) / len(gaps)
    return math.log(high / low) / (len(lrs) - 1)


def repeat_tolerance(
    repeats: Sequence[tuple[float, Sequence[float]]], floor: float = STEP_LAW_TOLERANCE
) -> float:
    """The band of the module's docstring for ``repeats`` ((lr, its repeats' losses) pairs):
    ``floor`` where fewer than two repeats, or fewer than two lrs with every repeat finite,
    measure the noise."""
    floor = check.nonnegative_float("floor", floor)
    finite = [
        (lr, [float(x) for x in losses])
        for lr, losses in repeats
        if len(losses) >= 2 and all(math.isfinite(x) for x in losses)
    ]
    if len(finite) < 2:
        return floor
    finite.sort(key=lambda item: sum(item[1]) / len(item[1]))
    nearest = finite[:POOLED_LRS]
    variance = sum(
        sum((x - sum(xs) / len(xs)) ** 2 for x in xs) / (len(xs) - 1) for _, xs in nearest
    ) / len(nearest)
    count = min(len(xs) for _, xs in nearest)
    best = sum(nearest[0][1]) / len(nearest[0][1])
    if not best > 0:
        return floor
    return max(floor, math.sqrt(variance * 2.0 / count) / best)
