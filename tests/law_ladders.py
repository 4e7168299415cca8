"""Synthetic ladders with a known optimum, for the figures and the report of ``lrkit laws``.

Every group's runs lie on one geometric grid (quarter octaves from 1e-4) within two octaves
of its optimum lr*, loss = 1 + (ln lr - ln lr*)^2, so the optimum falls between grid points
and the fitted law scatters a little about the truth (the intervals have a width)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lrkit.laws import FitSettings, HeldOutCheck, LawFit, check_largest, fit_law

GRID = tuple(1e-4 * 2 ** (k / 4) for k in range(80))
TOLERANCE = 0.05
"""A band of two or three grid points: |ln lr - ln lr*| <= sqrt(0.05)."""
BOOTSTRAP = 400
WIDTHS = (32.0, 64.0, 128.0, 256.0, 512.0)

Groups = Mapping[tuple[float, ...], Sequence[tuple[float, float]]]


def width_optimum(width: float, depth: float = 1e5) -> float:
    """lr*(w, D) = 0.01 (w / 32)^-0.5 (D / 1e5)^0.2."""
    return 0.01 * (width / 32) ** -0.5 * (depth / 1e5) ** 0.2


def bowl(optimum: float, *, from_optimum: bool = False) -> list[tuple[float, float]]:
    """The grid's runs around ``optimum``; ``from_optimum``: none below it (its band then
    holds the grid's smallest lr: at the edge)."""
    return [
        (lr, 1.0 + math.log(lr / optimum) ** 2)
        for lr in GRID
        if abs(math.log2(lr / optimum)) <= 2 and (not from_optimum or lr >= optimum)
    ]


def width_groups() -> dict[tuple[float, ...], list[tuple[float, float]]]:
    """A ladder of widths, the smallest one's grid starting at its optimum."""
    return {(w,): bowl(width_optimum(w), from_optimum=w == WIDTHS[0]) for w in WIDTHS}


def fit(groups: Groups, variables: Sequence[str], form: str = "power") -> LawFit:
    return fit_law(
        groups, variables, FitSettings(tolerance=TOLERANCE, bootstrap=BOOTSTRAP), form=form
    )


def held_out(groups: Groups, variables: Sequence[str]) -> HeldOutCheck:
    return check_largest(groups, variables, FitSettings(tolerance=TOLERANCE, bootstrap=BOOTSTRAP))


def two_variable_groups() -> dict[tuple[float, ...], list[tuple[float, float]]]:
    """eta(N, D) at four widths and two horizons."""
    return {(n, d): bowl(width_optimum(n, d)) for n in WIDTHS[:4] for d in (1e5, 1e6)}
