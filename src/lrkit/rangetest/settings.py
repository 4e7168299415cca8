"""The range test's settings, apart from what it runs on: torch-lr-finder splits the set-up
(model, optimizer, loss) from ``range_test(...)``'s arguments; lrkit's ``find_lr`` takes the
set-up as arguments and everything else as one frozen :class:`RangeTestSettings`, checked
when it is made (so the CLI checks its options before torch loads)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lrkit import validation as check
from lrkit.rangetest.core import check_stopping
from lrkit.rangetest.programs import (
    DEFAULT_SEGMENTS,
    LrProgram,
    check_rounds,
    parse_segments,
    segments_program,
)
from lrkit.rangetest.suggestions import DEFAULT_SUGGESTION, SUGGESTIONS
from lrkit.sweep.engines.names import AUTO, LOCAL_ENGINES

CURVES = ("auto", "eval", "mean", "smoothed")
"""Which loss the suggestions read: auto (eval if measured, else the hold mean when holds are
longer than one iteration, else the smoothed loss), eval, mean or smoothed."""
MAX_REPEATS = 64
"""Repeats of a range test at most: one stack of the vectorized engine (``sweep.stacks``)."""


def default_program() -> LrProgram:
    """The textbook's first round (1e-4 .. 1.1 in stepped segments, each lr held 10 iterations)
    continued to 90, where the test stops once the loss diverges."""
    return segments_program(parse_segments(DEFAULT_SEGMENTS))


@dataclass(frozen=True)
class RangeTestSettings:
    """How the range test runs. Every field has the textbook's default.

    Args:
        batch_size: examples per iteration (ignored for a ``DataLoader``); on a DDP model,
            per rank: each step reads a global batch of ``batch_size`` x world examples.
        program: an ``LrProgram`` or a segment string ``start:stop:step@hold,...``;
            default ``programs.DEFAULT_SEGMENTS``, the textbook's first round continued.
        rounds: how many rounds; each narrows around the previous round's turning point,
            crossing ``span`` held rates either side of it in about ``points`` linear steps
            after the same lead-in (``programs.narrow``).
        curve: which loss the suggestions read (``CURVES``).
        suggestion: the rule whose value is ``suggested_lr`` (``lrkit.rangetest.suggestions``).
        seed: seeds the data order (the same in every round).
        repeats: runs of each round, repeat r reading the data in the order of ``seed + r``
            from the same initial weights; the rounds read the mean curve (a hold where any
            repeat diverged counts as diverged), and ``suggested_lr_by_repeat`` gives each
            repeat's own suggestion, a measure of the answer's noise.
        engine: vectorized runs the repeats as one stacked model (``training.vectorized``);
            auto does so when the model, optimizer and data allow (plain or momentum SGD on
            tensors), else, with ``engine_reason`` saying why, runs them one after another
            (sequential).
        smoothing: beta of the smoothed loss's bias-corrected moving average.
        diverge_factor: stop when the smoothed loss exceeds this times its minimum (below
            zero, as ``rangetest.core.divergence_threshold`` says).
        accumulation_steps: micro-batches per optimizer step (gradient accumulation).
        amp: mixed precision (CUDA only).
        eval_batch_size: examples per forward pass when measuring the evaluation loss.
    """

    batch_size: int = 16
    program: LrProgram | str | None = None
    rounds: int = 1
    points: int = 20
    span: int = 2
    curve: str = "auto"
    suggestion: str = DEFAULT_SUGGESTION
    seed: int = 0
    repeats: int = 1
    engine: str = AUTO
    smoothing: float = 0.98
    diverge_factor: float = 4.0
    accumulation_steps: int = 1
    amp: bool = False
    eval_batch_size: int = 1024
    lr_program: LrProgram = field(init=False, repr=False, compare=False)
    """``program`` as an ``LrProgram`` (the default one when ``program`` is None)."""

    def __post_init__(self) -> None:
        check.positive_int("batch_size", self.batch_size)
        check.positive_int("span", self.span)
        check.choice("curve", self.curve, CURVES)
        check.choice("suggestion", self.suggestion, tuple(SUGGESTIONS))
        check.int_in(
            "repeats", self.repeats, 1, MAX_REPEATS, "the vectorized engine's largest stack"
        )
        check.choice("engine", self.engine, LOCAL_ENGINES)
        check.seed("seed", self.seed)
        check_stopping(self.smoothing, self.diverge_factor)
        check.positive_int("accumulation_steps", self.accumulation_steps)
        check.positive_int("eval_batch_size", self.eval_batch_size)
        program = self.program
        if isinstance(program, str):
            program = segments_program(parse_segments(program))
        program = program or default_program()
        check_rounds(program, self.rounds, self.points)
        object.__setattr__(self, "lr_program", program)
