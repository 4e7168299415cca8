"""Moved to :mod:`lrkit.rangetest.suggestions`; this name stays for code written against
lrkit 0.1 (``from lrkit.suggestions import turning_point``)."""

from lrkit.rangetest.suggestions import (
    DEFAULT_SUGGESTION,
    SUGGESTIONS,
    TurningPoint,
    find_turning_point,
    minimum,
    steepest,
    suggest_all,
    turning_point,
    valley,
)

__all__ = [
    "DEFAULT_SUGGESTION",
    "SUGGESTIONS",
    "TurningPoint",
    "find_turning_point",
    "minimum",
    "steepest",
    "suggest_all",
    "turning_point",
    "valley",
]
