"""Argument checks used at lrkit's boundaries (library factories and the CLI).

Each check returns the value converted to its canonical type or raises
:class:`~lrkit.errors.InvalidParameterError` naming the parameter and what is allowed.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable

from lrkit.errors import InvalidParameterError


def _real(name: str, value: object, requirement: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(name, requirement, value)
    result = float(value)
    if not math.isfinite(result):
        raise InvalidParameterError(name, requirement, value)
    return result


def positive_float(name: str, value: object) -> float:
    """A finite number > 0."""
    requirement = "a finite number > 0"
    result = _real(name, value, requirement)
    if result <= 0:
        raise InvalidParameterError(name, requirement, value)
    return result


def nonnegative_float(name: str, value: object) -> float:
    """A finite number >= 0."""
    requirement = "a finite number >= 0"
    result = _real(name, value, requirement)
    if result < 0:
        raise InvalidParameterError(name, requirement, value)
    return result


def nonzero_float(name: str, value: object) -> float:
    """A finite number other than 0."""
    requirement = "a finite number other than 0"
    result = _real(name, value, requirement)
    if result == 0:
        raise InvalidParameterError(name, requirement, value)
    return result


def float_in(
    name: str, value: object, low: float, high: float, *, low_open: bool, high_open: bool
) -> float:
    """A finite number in an interval; open or closed at each end."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    requirement = f"a number in {left}{low:g}, {high:g}{right}"
    result = _real(name, value, requirement)
    too_low = result <= low if low_open else result < low
    too_high = result >= high if high_open else result > high
    if too_low or too_high:
        raise InvalidParameterError(name, requirement, value)
    return result


def _integer(name: str, value: object, requirement: str) -> int:
    if isinstance(value, bool):
        raise InvalidParameterError(name, requirement, value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(float(value))
    raise InvalidParameterError(name, requirement, value)


def positive_int(name: str, value: object) -> int:
    """An integer > 0 (a float with an integral value is accepted)."""
    requirement = "an integer > 0"
    result = _integer(name, value, requirement)
    if result <= 0:
        raise InvalidParameterError(name, requirement, value)
    return result


def nonnegative_int(name: str, value: object) -> int:
    """An integer >= 0 (a float with an integral value is accepted)."""
    requirement = "an integer >= 0"
    result = _integer(name, value, requirement)
    if result < 0:
        raise InvalidParameterError(name, requirement, value)
    return result


def increasing_positive_ints(name: str, values: Iterable[object]) -> tuple[int, ...]:
    """A non-empty, strictly increasing sequence of integers > 0."""
    requirement = "a non-empty, strictly increasing list of integers > 0"
    items = list(values)
    if not items:
        raise InvalidParameterError(name, requirement, items)
    result = tuple(_integer(name, v, requirement) for v in items)
    if result[0] <= 0 or any(b <= a for a, b in itertools.pairwise(result)):
        raise InvalidParameterError(name, requirement, items)
    return result


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """One of a fixed set of strings."""
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        raise InvalidParameterError(name, "one of " + ", ".join(options), value)
    return value
