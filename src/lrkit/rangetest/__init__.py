"""The learning-rate range test (L. N. Smith 2017; the textbook's stepped segments).

Two halves, one package:

- the torch-free core, callable from numpy, JAX or any training step: ``core`` (the ask/tell
  test), ``programs`` (which lr at each iteration), ``suggestions`` (the rules that read a
  curve) and ``settings`` (the test's settings, checked before torch loads);
- the PyTorch driver: ``find`` (``find_lr``, the rounds and the state restore), ``rounds``
  (one pass on the plain loop), ``stacked_rounds`` (repeats on the vectorized engine) and
  ``result`` (what a test returns).

Importing this package imports neither torch nor matplotlib; ``find_lr`` loads torch on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrkit.rangetest.core import Hold, Point, RangeTest, RoundRecord, Step
from lrkit.rangetest.programs import (
    DEFAULT_SEGMENTS,
    LrProgram,
    Segment,
    exponential_range,
    linear_range,
    parse_segments,
    segments_program,
)
from lrkit.rangetest.suggestions import (
    DEFAULT_SUGGESTION,
    SUGGESTIONS,
    minimum,
    steepest,
    suggest_all,
    turning_point,
    valley,
)

if TYPE_CHECKING:
    from lrkit.rangetest.find import find_lr

__all__ = [
    "DEFAULT_SEGMENTS",
    "DEFAULT_SUGGESTION",
    "SUGGESTIONS",
    "Hold",
    "LrProgram",
    "Point",
    "RangeTest",
    "RoundRecord",
    "Segment",
    "Step",
    "exponential_range",
    "find_lr",
    "linear_range",
    "minimum",
    "parse_segments",
    "segments_program",
    "steepest",
    "suggest_all",
    "turning_point",
    "valley",
]


def __getattr__(name: str) -> Any:
    if name == "find_lr":  # the PyTorch driver loads torch on first use
        from lrkit.rangetest.find import find_lr

        return find_lr
    raise AttributeError(f"module 'lrkit.rangetest' has no attribute {name!r}")
