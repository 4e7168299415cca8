"""A fitted law in words: its formula with the fitted numbers, and the intervals of its
exponents (what the CLI, a figure's title and a report's paragraph say about one ``LawFit``).

A law's quantity is ``"lr"`` (the best learning rate, written eta*) or ``"batch_size"`` (the
best batch size, B*)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lrkit.laws.fit import LawFit

QUANTITIES = {"lr": ("eta*", "best learning rate"), "batch_size": ("B*", "best batch size")}
"""Each quantity a law predicts: its symbol and its name in words."""


def symbol(quantity: str) -> str:
    """``eta*`` for the learning rate, ``B*`` for the batch size."""
    return QUANTITIES[quantity][0]


def quantity_words(quantity: str) -> str:
    """``best learning rate`` or ``best batch size`` (an axis label)."""
    return QUANTITIES[quantity][1]


def law_formula(fit: LawFit, quantity: str = "lr") -> str:
    """``eta* = 0.0566 width^-0.5`` (power, any number of variables) or
    ``ln eta* = -2.87 - 0.5 ln width + 0.01 (ln width)^2`` (log-quadratic); ``B*`` in place
    of ``eta*`` for a batch-size law (``LawForm.formula``). Each exponent at the precision
    of its interval (``figure``)."""
    shown = [
        figure(e, interval)
        for e, interval in zip(fit.exponents, fit.exponent_intervals, strict=True)
    ]
    return fit.law_form.formula(symbol(quantity), fit.coefficient, fit.variables, shown)


def law_intervals(fit: LawFit) -> str:
    """Each exponent with its ``level`` interval from the refits, named by its variable
    (power) or by its term (log-quadratic: b of ln v, c of (ln v)^2): ``LawForm.terms``."""
    names = fit.law_form.terms(fit.variables)
    parts = [
        f"{label} {figure(value, (low, high))} "
        f"({figure(low, (low, high))} .. {figure(high, (low, high))})"
        for label, value, (low, high) in zip(
            names, fit.exponents, fit.exponent_intervals, strict=True
        )
    ]
    return f"{fit.level:.0%} intervals: " + ", ".join(parts)


def law_values(fit: LawFit, values: Sequence[float]) -> str:
    """Values of the law's variables by name: ``width 512`` or ``N 1024, D 1e+06``."""
    return ", ".join(f"{n} {v:g}" for n, v in zip(fit.variables, values, strict=True))


def figure(value: float, interval: tuple[float, float]) -> str:
    """``value`` to 3 significant figures of the larger of itself and its ``interval``'s
    width: float noise beside an interval of a tenth (-1.09e-15 in -0.11 .. 0.11) is 0, as the
    fit cannot tell it from 0."""
    low, high = interval
    scale = max(abs(value), high - low)
    if not math.isfinite(scale) or scale == 0.0:
        return f"{value:.3g}"
    quantum = 10.0 ** (math.floor(math.log10(scale)) - 2)
    return f"{round(value / quantum) * quantum + 0.0:.3g}"


def resolution_sentence(fit: LawFit, quantity: str) -> str | None:
    """Where the optima fit the law more closely than the grid reads them, that the
    intervals are the grid's resolution (None otherwise)."""
    if not fit.at_resolution:
        return None
    finer = "a finer lr grid (--per-octave)" if quantity == "lr" else "batch sizes closer together"
    return (
        "the optima fit the law more closely than the grid reads them (each within half a "
        f"grid step of its band's centre, ln sd {math.sqrt(fit.reading_variance):.3g}): the "
        f"intervals are the grid's resolution; {finer} narrows them"
    )


def ln_error(error: float) -> str:
    """A held-out error on a log scale, to 3 significant figures and to 3 decimals at most
    (0.1% of the optimum): float noise in an exact fit reads 0."""
    return figure(error, (0.0, 0.1))
