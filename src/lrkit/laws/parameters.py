"""N, a model's trainable parameters, at the ladder's sizes and at a forecast's target, counted
without building the model in memory.

A model built under ``torch.device("meta")`` (PyTorch's meta device) has parameters of the
right shapes and no storage: counting N at a width of a million costs no memory. A factory
that cannot be built there (one that copies data into its weights, or calls ``.item()``) is
built for real at the ladder's sizes (they train anyway), and at a target its N is
extrapolated from the ladder's counts: the lowest-degree polynomial in the size, at most
``MAX_DEGREE`` (an MLP's N = a w^2 + b w + c in its width; a stack of equal blocks' N linear in
its depth), that passes through every count exactly (a degree d is fitted to d + 1 counts and
checked on the rest). A model is never built in memory for a forecast.

Before any training, the counts refuse a factory that has no trainable parameters, or that
gives the same N at two sizes (it ignores the size it is given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch

from lrkit.errors import LrkitValueError, quoted
from lrkit.laws.ladder import SizeFactory, at_size, parameter_count
from lrkit.workload import exception_line

MAX_DEGREE = 2
"""The highest degree of a polynomial in the size that N is extrapolated by."""
DEGREES = ("a constant", "a line", "a quadratic")


@dataclass(frozen=True)
class Count:
    """N at a size, and how it was found."""

    parameters: int
    extrapolated: str = ""
    """How N was extrapolated from the ladder's counts, and why ('' where it was counted)."""


def counted_on_meta(factory: SizeFactory, size: int) -> int:
    """N of ``factory(size)`` built on the meta device (raising what the factory raises
    there); the global RNG as it was."""
    with torch.device("meta"):
        return parameter_count(at_size(factory, size)(0))


def ladder_counts(factory: SizeFactory, sizes: Sequence[int]) -> dict[int, int]:
    """N at each of the ladder's ``sizes``: on the meta device, or built where the factory
    fails there (these sizes train anyway, and a real failure is then the factory's own)."""
    counts = {}
    for size in sorted(set(sizes)):
        try:
            counts[size] = counted_on_meta(factory, size)
        except Exception:  # any failure on meta: the real build below says what is wrong
            counts[size] = parameter_count(at_size(factory, size)(0))
    return counts


def check_counts(counts: Mapping[int, int], model: str, axis: str) -> None:
    """Refuse a factory with no trainable parameters, or one giving the same N at two sizes
    (it ignores its argument), naming ``--model`` and the sizes."""
    empty = [size for size, n in sorted(counts.items()) if n == 0]
    if empty:
        raise LrkitValueError(
            f"--model {quoted(model)} has no trainable parameters at {axis} {empty[0]}: there "
            "is no learning rate to find"
        )
    by_count: dict[int, list[int]] = {}
    for size, n in sorted(counts.items()):
        by_count.setdefault(n, []).append(size)
    for n, sizes in by_count.items():
        if len(sizes) > 1:
            raise LrkitValueError(
                f"--model {quoted(model)} builds the same model (N = {n}) at {axis}s "
                f"{', '.join(str(s) for s in sizes)}: its factory must build the model at the "
                f"{axis} it is given"
            )


def target_count(
    factory: SizeFactory, counts: Mapping[int, int], size: int, model: str, axis: str
) -> Count:
    """N at a target ``size``: the ladder's count, else counted on the meta device, else
    extrapolated from ``counts`` (the module's docstring); refused where none of these can."""
    if size in counts:
        return Count(counts[size])
    try:
        return Count(counted_on_meta(factory, size))
    except Exception as exc:  # any failure on meta: extrapolate rather than build
        reason = str(exc) if isinstance(exc, LrkitValueError) else exception_line(exc)
    found = polynomial_count(counts, size)
    if found is None:
        raise LrkitValueError(
            f"--predict-{axis} {size}: --model {quoted(model)} cannot be built on PyTorch's "
            f"meta device ({reason}) and its N at the ladder's {axis}s follows no polynomial "
            f"of degree {MAX_DEGREE} or less: N there cannot be counted without building it"
        )
    n, degree = found
    return Count(
        n,
        f"{DEGREES[degree]} in the {axis} through the ladder's counts, as the model cannot be "
        f"built on PyTorch's meta device ({reason})",
    )


def polynomial_count(counts: Mapping[int, int], size: int) -> tuple[int, int] | None:
    """N at ``size`` and the degree of the lowest-degree polynomial (at most ``MAX_DEGREE``)
    that passes through every (size, N) of ``counts``, fitted to the first degree + 1 and
    checked on the rest; None where none does, or where it gives no positive N at ``size``."""
    points = sorted(counts.items())
    for degree in range(MAX_DEGREE + 1):
        if len(points) < degree + 2:
            return None
        basis = points[: degree + 1]
        if all(lagrange(basis, x) == n for x, n in points[degree + 1 :]):
            value = round(lagrange(basis, size))
            return (value, degree) if value > 0 else None
    return None


def lagrange(points: Sequence[tuple[int, int]], x: int) -> Fraction:
    """The polynomial through ``points`` (of distinct x), at ``x``, in exact arithmetic."""
    total = Fraction(0)
    for i, (xi, yi) in enumerate(points):
        term = Fraction(yi)
        for j, (xj, _) in enumerate(points):
            if j != i:
                term *= Fraction(x - xj, xi - xj)
        total += term
    return total
