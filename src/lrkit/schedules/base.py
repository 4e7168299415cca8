"""The schedule type: a learning rate as a pure function of the iteration."""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int], float]
"""``sched(t) -> lr``: the learning rate at iteration ``t`` (0-based, ``t >= 0``)."""


def pow_or_inf(base: float, exponent: float) -> float:
    """``base ** exponent``, giving ``inf`` instead of raising when the result overflows."""
    try:
        return float(base**exponent)
    except OverflowError:
        return math.inf
