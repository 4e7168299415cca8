"""Moved to :mod:`lrkit.rangetest.programs`; this name stays for code written against
lrkit 0.1 (``from lrkit.programs import exponential_range``)."""

from lrkit.rangetest.programs import (
    DEFAULT_SEGMENTS,
    TEXTBOOK_FIRST_ROUND,
    LrProgram,
    Segment,
    exponential_range,
    linear_range,
    narrow,
    parse_segment,
    parse_segments,
    segment,
    segments_program,
)

__all__ = [
    "DEFAULT_SEGMENTS",
    "TEXTBOOK_FIRST_ROUND",
    "LrProgram",
    "Segment",
    "exponential_range",
    "linear_range",
    "narrow",
    "parse_segment",
    "parse_segments",
    "segment",
    "segments_program",
]
