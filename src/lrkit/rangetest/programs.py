"""Learning-rate programs for the range test: which lr to use at each iteration.

A program is a sequence of held learning rates: each lr is used for ``hold`` iterations
before the next. Three kinds:

- an exponential range (Smith 2017; the usual LR-finder sweep): ``num_steps`` rates from
  ``start`` to ``end``, evenly spaced in log(lr);
- a linear range: ``num_steps`` rates evenly spaced from ``start`` to ``end``;
- the textbook's stepped segments, ``start:stop:step@hold``: start, start + step, ... up to
  stop inclusive, each held for ``hold`` iterations. A program is a comma-separated list of
  segments, e.g. ``1e-4:9e-4:1e-4@10,1e-3:9e-3:1e-3@10``.

Segment points are computed in decimal arithmetic from the numbers as written (or as the
shortest decimal of a float), so ``1e-4 + 2 * 1e-4`` is 0.0003 exactly, and an end point is
neither dropped nor duplicated by floating-point accumulation.

A program runs at most ``MAX_ITERATIONS`` iterations: every constructor counts them from its
numbers (a segment's from start, stop and step, in decimal) before it generates a single lr,
so a typo like ``0.1:0.5:1e-9@5`` is refused at once instead of filling the memory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, Overflow

from lrkit import validation as check
from lrkit.errors import InvalidParameterError, LrkitValueError, quoted

MAX_ITERATIONS = 1_000_000
"""Iterations a program runs at most (the textbook's first round runs 470; lrkit's default
640). A range test keeps a point per iteration, so this bounds its memory too."""

MAX_ROUNDS = 10
"""Rounds of a range test at most: each narrows the window about ``points / 4`` times, so ten
already reach steps far below any difference training could tell."""


@dataclass(frozen=True)
class Segment:
    """Learning rates ``start, start + step, ...`` up to ``stop`` inclusive, each held ``hold``
    iterations. The textbook writes one as ``start:stop:step@hold``."""

    start: Decimal
    stop: Decimal
    step: Decimal
    hold: int

    @property
    def count(self) -> int:
        """How many learning rates: start, start + step, ... up to stop."""
        return int((self.stop - self.start) / self.step) + 1

    @property
    def num_iterations(self) -> int:
        return self.count * self.hold

    def lrs(self) -> tuple[float, ...]:
        """The segment's learning rates; ``stop`` is included when the steps land on it."""
        return tuple(float(self.start + i * self.step) for i in range(self.count))

    def __str__(self) -> str:
        return f"{_plain(self.start)}:{_plain(self.stop)}:{_plain(self.step)}@{self.hold}"


@dataclass(frozen=True)
class LrProgram:
    """Held learning rates in order: ``lrs[i]`` is used for ``holds[i]`` iterations."""

    lrs: tuple[float, ...]
    holds: tuple[int, ...]
    description: str
    focus: float | None = None
    """For a narrowed round, the first lr of its fine steps (the window it narrows to)."""

    def __post_init__(self) -> None:
        if not self.lrs:
            raise LrkitValueError("the learning-rate program is empty")
        if len(self.lrs) != len(self.holds):
            raise LrkitValueError("a program needs one hold per learning rate")
        check_iterations(self.num_iterations)

    @property
    def num_iterations(self) -> int:
        return sum(self.holds)

    def iterations(self) -> Iterator[tuple[int, float, int, bool]]:
        """``(iteration, lr, hold_index, ends_hold)`` for every iteration of the program."""
        t = 0
        for index, (lr, hold) in enumerate(zip(self.lrs, self.holds, strict=True)):
            for k in range(hold):
                yield t, lr, index, k == hold - 1
                t += 1


def check_iterations(iterations: int, what: str = "the program") -> int:
    """``iterations`` of a program, at most ``MAX_ITERATIONS``."""
    if iterations > MAX_ITERATIONS:
        raise LrkitValueError(
            f"{what} runs {iterations} iterations; a program runs at most {MAX_ITERATIONS}"
        )
    return iterations


def exponential_range(start: float, end: float, num_steps: int, hold: int = 1) -> LrProgram:
    """``num_steps`` rates from ``start`` to ``end`` evenly spaced in log(lr).

    lr_i = start * (end / start) ** (i / (num_steps - 1)),  i = 0 .. num_steps - 1
    """
    start, end, num_steps, hold = _check_range(start, end, num_steps, hold)
    ratio = end / start
    lrs = (*tuple(start * ratio ** (i / (num_steps - 1)) for i in range(num_steps - 1)), end)
    return LrProgram(lrs, (hold,) * num_steps, f"exp {start:g}..{end:g} in {num_steps} steps")


def linear_range(start: float, end: float, num_steps: int, hold: int = 1) -> LrProgram:
    """``num_steps`` rates from ``start`` to ``end`` evenly spaced.

    lr_i = start + (end - start) * i / (num_steps - 1),  i = 0 .. num_steps - 1
    """
    start, end, num_steps, hold = _check_range(start, end, num_steps, hold)
    lrs = (*tuple(start + (end - start) * i / (num_steps - 1) for i in range(num_steps - 1)), end)
    return LrProgram(lrs, (hold,) * num_steps, f"linear {start:g}..{end:g} in {num_steps} steps")


def check_rounds(first: LrProgram, rounds: int, points: int) -> None:
    """Refuse, before the first round runs, rounds that could narrow past ``MAX_ITERATIONS``.

    A narrowed round (:func:`narrow`) takes part of the round before it as its lead-in and
    adds at most ``points + 1`` fine lrs, each held as long as one of that round's holds (a
    hold of the first round); so round k runs at most
    ``first + (k - 1) * (points + 1) * max(holds)`` iterations."""
    rounds = check.int_in("rounds", rounds, 1, MAX_ROUNDS)
    points = check.int_in("points", points, 1, MAX_ITERATIONS)
    longest = max(first.holds)
    bound = first.num_iterations + (rounds - 1) * (points + 1) * longest
    if bound > MAX_ITERATIONS:
        why = (
            f"with {rounds} rounds the last could run {bound} iterations (the first round's "
            f"{first.num_iterations}, then {points + 1} lrs held up to {longest} iterations "
            f"a round); a program runs at most {MAX_ITERATIONS}"
        )
        raise LrkitValueError(
            f"points {points}: {why}",
            cli_message=f"--points {points}: {why}: lower --points or --rounds, or shorten "
            "the program",
        )


def _check_range(
    start: float, end: float, num_steps: int, hold: int
) -> tuple[float, float, int, int]:
    start = check.positive_float("start_lr", start)
    end = check.positive_float("end_lr", end)
    if end <= start:
        raise InvalidParameterError("end_lr", f"> start_lr ({start:g})", end)
    num_steps = check.int_in("num_steps", num_steps, 2, MAX_ITERATIONS)
    hold = check.int_in("hold", hold, 1, MAX_ITERATIONS)
    check_iterations(num_steps * hold, f"num_steps x hold = {num_steps} x {hold}")
    return start, end, num_steps, hold


_SEGMENT = re.compile(r"^\s*([^:@\s]+)\s*:\s*([^:@\s]+)\s*:\s*([^:@\s]+)\s*@\s*([^:@\s]+)\s*$")


def parse_segment(text: str) -> Segment:
    """Parse one ``start:stop:step@hold``; raise a one-line error naming what is wrong."""
    match = _SEGMENT.match(text)
    if match is None:
        raise _segment_error(text, "expected start:stop:step@hold, e.g. 1e-3:9e-3:1e-3@10")
    start_text, stop_text, step_text, hold_text = match.groups()
    start, stop, step = (_decimal(text, v) for v in (start_text, stop_text, step_text))
    try:
        hold = int(hold_text)
    except ValueError:
        raise _segment_error(
            text, f"hold must be an integer > 0, got {quoted(hold_text)}"
        ) from None
    return segment(start, stop, step, hold, text=text)


def segment(
    start: float | Decimal,
    stop: float | Decimal,
    step: float | Decimal,
    hold: int,
    *,
    text: str = "",
) -> Segment:
    """A checked segment; floats are taken as their shortest decimal (``0.1``, not 0.1000...01)."""
    s, e, d = (
        v if isinstance(v, Decimal) else Decimal(repr(float(v))) for v in (start, stop, step)
    )
    shown = text or f"{_plain(s)}:{_plain(e)}:{_plain(d)}@{hold}"
    if not all(v.is_finite() for v in (s, e, d)):
        raise _segment_error(shown, "start, stop and step must be finite numbers")
    if s <= 0:
        raise _segment_error(shown, f"start must be > 0, got {_plain(s)}")
    if s >= e:
        raise _segment_error(shown, f"start must be < stop, got {_plain(s)} >= {_plain(e)}")
    if d <= 0:
        raise _segment_error(shown, f"step must be > 0, got {_plain(d)}")
    if isinstance(hold, bool) or not isinstance(hold, int) or hold <= 0:
        raise _segment_error(shown, f"hold must be an integer > 0, got {hold}")
    try:
        steps = (e - s) / d  # counted before any lr is generated
    except Overflow:
        steps = Decimal("Infinity")
    if hold > MAX_ITERATIONS or steps + 1 > MAX_ITERATIONS // hold:
        raise _segment_error(
            shown,
            f"{_count(steps + 1)} held {hold} iterations each; a program runs at most "
            f"{MAX_ITERATIONS} iterations",
        )
    return Segment(s, e, d, hold)


def _count(lrs: Decimal) -> str:
    """A segment's number of lrs as a person reads it: exact up to 15 digits, then
    ``4.0e+29``; past what decimal arithmetic can hold, said so."""
    if not lrs.is_finite():
        return "more lrs than can be counted"
    return f"{int(lrs) if lrs < Decimal(10) ** 15 else format(lrs, '.1e')} lrs"


def parse_segments(text: str) -> tuple[Segment, ...]:
    """Parse a comma-separated list of segments."""
    pieces = [p for p in text.split(",") if p.strip()]
    if not pieces:
        raise LrkitValueError(
            "the segment program is empty",
            cli_message="--segments is empty; give start:stop:step@hold,... e.g. 1e-3:9e-3:1e-3@10",
        )
    return tuple(parse_segment(p) for p in pieces)


def segments_program(segments: Sequence[Segment]) -> LrProgram:
    """The program that runs ``segments`` in order (the textbook's stepped test)."""
    if not segments:
        raise LrkitValueError("the segment program is empty")
    check_iterations(sum(seg.num_iterations for seg in segments), "the segments together")
    lrs: list[float] = []
    holds: list[int] = []
    for seg in segments:
        for lr in seg.lrs():
            lrs.append(lr)
            holds.append(seg.hold)
    return LrProgram(tuple(lrs), tuple(holds), ",".join(str(s) for s in segments))


TEXTBOOK_FIRST_ROUND = (
    "1e-4:9e-4:1e-4@10,1e-3:9e-3:1e-3@10,1e-2:9e-2:1e-2@10,0.1:0.9:0.1@10,1.0:1.1:0.01@10"
)
"""The textbook's first round: every decade from 1e-4 to 1 in nine steps, then 1.0..1.1."""

DEFAULT_SEGMENTS = TEXTBOOK_FIRST_ROUND + ",2:9:1@10,10:90:10@10"
"""lrkit's default: the textbook's first round continued by two decades, so that the loss has
room to turn on networks that still improve at 1.1 (the textbook's own does); the test stops
when the loss diverges, so the extra segments cost nothing once it has."""


def nice_step(width: float, points: int) -> Decimal:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts ``width`` into about
    ``points`` pieces, so a narrowed round reads like the textbook's ``0.1:0.5:0.02``."""
    raw = width / max(points, 1)
    exponent = math.floor(math.log10(raw))
    for mantissa in ("1", "2", "2.5", "5", "10"):
        candidate = Decimal(mantissa).scaleb(exponent)
        if candidate >= Decimal(repr(raw)):
            return candidate
    raise AssertionError("unreachable: 10 * 10**e >= raw")


def narrow(program: LrProgram, turn_index: int, points: int = 20, span: int = 2) -> LrProgram:
    """The next round: the same lead-in, then finer linear steps around the turning point.

    The window is the previous round's held rates ``span`` places either side of the turn,
    ``lrs[turn_index - span] .. lrs[turn_index + span]`` (clamped to the ends). The new round
    repeats the previous program's holds below the window, so it reaches the window with the
    same training behind it (the textbook's first round has this shape: coarse decades, then
    ``1.0:1.1:0.01``), and crosses the window in steps of about (hi - lo) / ``points``, rounded
    to a nice number, each held as long as the turn's hold.
    """
    lrs = program.lrs
    turn_index = min(max(turn_index, 0), len(lrs) - 1)
    lo = Decimal(repr(lrs[max(turn_index - span, 0)]))
    hi = Decimal(repr(lrs[min(turn_index + span, len(lrs) - 1)]))
    if hi <= lo:
        # A single-rate program: look either side of it instead.
        lo, hi = lo / 2, lo * 2
    step = nice_step(float(hi - lo), points)
    # The fine steps start on the new step's grid, at or above lo.
    start = max((lo / step).to_integral_value(rounding="ROUND_CEILING") * step, step)
    if start >= hi:
        start = lo
    fine = segment(start, hi, step, program.holds[turn_index])
    lead = [(lr, h) for lr, h in zip(lrs, program.holds, strict=True) if lr < float(start)]
    fine_lrs = fine.lrs()
    description = (
        f"lead-in {len(lead)} lrs up to {lead[-1][0]:g}, then {fine}" if lead else str(fine)
    )
    return LrProgram(
        tuple(lr for lr, _ in lead) + fine_lrs,
        tuple(h for _, h in lead) + (fine.hold,) * len(fine_lrs),
        description,
        focus=fine_lrs[0],
    )


def _decimal(segment_text: str, value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise _segment_error(segment_text, f"{quoted(value)} is not a number") from None


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f") if abs(value.adjusted()) < 6 else str(value.normalize())
    return text


def _segment_error(text: str, problem: str) -> LrkitValueError:
    return LrkitValueError(
        f"bad segment {quoted(text.strip())}: {problem}",
        cli_message=f"--segments: bad segment {quoted(text.strip())}: {problem}",
    )
