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
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_open: bool,
    high_open: bool,
    why: str = "",
) -> float:
    """A finite number in an interval; open or closed at each end; ``why`` says where a bound
    comes from, in the message."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    requirement = f"a number in {left}{low:g}, {high:g}{right}" + (f" ({why})" if why else "")
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


def int_at_least(name: str, value: object, low: int, why: str = "") -> int:
    """An integer >= ``low``; ``why`` says where the bound comes from, in the message."""
    requirement = f"an integer >= {low}" + (f" ({why})" if why else "")
    result = _integer(name, value, requirement)
    if result < low:
        raise InvalidParameterError(name, requirement, value)
    return result


def int_in(name: str, value: object, low: int, high: int, why: str = "") -> int:
    """An integer in ``[low, high]`` (a float with an integral value is accepted); ``why``
    says where a bound comes from, in the message."""
    requirement = f"an integer in [{low}, {high}]" + (f" ({why})" if why else "")
    result = _integer(name, value, requirement)
    if not low <= result <= high:
        raise InvalidParameterError(name, requirement, value)
    return result


SEED_MAX = 2**32 - 1
"""The largest seed: seeds are 32-bit unsigned integers, as numpy's and most RNGs' are, so a
seed given to lrkit means the same thing to every generator it may reach."""


def seed(name: str, value: object) -> int:
    """A seed: an integer in ``[0, SEED_MAX]``."""
    return int_in(name, value, 0, SEED_MAX)


def greater_than(name: str, value: object, bound: float) -> float:
    """A finite number > ``bound``."""
    requirement = f"a finite number > {bound:g}"
    result = _real(name, value, requirement)
    if result <= bound:
        raise InvalidParameterError(name, requirement, value)
    return result


MAX_CHECKS = 100_000
"""Checks (evaluations) a training run makes at most: each keeps a point in memory and in the
results, so their number is bounded before a run starts."""


def epochs_between_checks(name: str, value: object, epochs: float) -> float:
    """Epochs between the checks of a run of ``epochs`` epochs: at most ``epochs`` (a run
    checks at its end anyway) and at least ``epochs / MAX_CHECKS``."""
    return float_in(
        name,
        value,
        epochs / MAX_CHECKS,
        epochs,
        low_open=False,
        high_open=False,
        why=f"at most the epochs, and at most {MAX_CHECKS} checks a run",
    )


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
