"""Parsing option values shared by several verbs."""

from __future__ import annotations

from fractions import Fraction

from lrkit import validation as check
from lrkit.errors import LrkitValueError


def parse_fraction(name: str, text: str) -> float:
    """``1/12`` or ``0.0833``, in (0, 1)."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise LrkitValueError(
            f"--{name.replace('_', '-')} must be a fraction like 1/12 or 0.1, got {text!r}"
        ) from None
    return check.float_in(name, value, 0.0, 1.0, low_open=True, high_open=True)
