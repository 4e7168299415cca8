"""Learning-rate programs: the textbook's segments, ranges, and narrowing."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit.errors import LrkitValueError
from lrkit.rangetest.programs import (
    DEFAULT_SEGMENTS,
    TEXTBOOK_FIRST_ROUND,
    exponential_range,
    linear_range,
    narrow,
    nice_step,
    parse_segments,
    segment,
    segments_program,
)


def test_textbook_first_round_has_every_point_once() -> None:
    program = segments_program(parse_segments(TEXTBOOK_FIRST_ROUND))
    expected = (
        [k * 1e-4 for k in range(1, 10)]
        + [k * 1e-3 for k in range(1, 10)]
        + [k * 1e-2 for k in range(1, 10)]
        + [k * 0.1 for k in range(1, 10)]
        + [1.0 + k * 0.01 for k in range(11)]
    )
    assert len(program.lrs) == 47
    assert list(program.lrs) == pytest.approx(expected, rel=1e-12)
    # end points exactly as written, not 0.0009000000000000001
    for end in (0.0009, 0.009, 0.09, 0.9, 1.1):
        assert end in program.lrs
    assert program.lrs[2] == 0.0003
    assert len(set(program.lrs)) == 47
    assert program.holds == (10,) * 47
    assert program.num_iterations == 470


def test_iterations_walk_the_holds() -> None:
    program = segments_program(parse_segments("0.1:0.2:0.1@2,1:1.5:0.5@1"))
    assert list(program.iterations()) == [
        (0, 0.1, 0, False),
        (1, 0.1, 0, True),
        (2, 0.2, 1, False),
        (3, 0.2, 1, True),
        (4, 1.0, 2, True),
        (5, 1.5, 3, True),
    ]


@given(
    start=st.integers(1, 10_000),
    step=st.integers(1, 1_000),
    count=st.integers(1, 200),
    scale=st.integers(-8, 2),
)
def test_segment_end_point_is_neither_dropped_nor_duplicated(
    start: int, step: int, count: int, scale: int
) -> None:
    s, d = Decimal(start).scaleb(scale), Decimal(step).scaleb(scale)
    stop = s + count * d
    lrs = segment(s, stop, d, 1).lrs()
    assert len(lrs) == count + 1
    assert lrs[0] == float(s)
    assert lrs[-1] == float(stop)
    assert all(b > a for a, b in itertools.pairwise(lrs))


def test_segment_stops_before_an_unreached_stop() -> None:
    assert segment(1.0, 1.1, 0.03, 1).lrs() == (1.0, 1.03, 1.06, 1.09)


def test_floats_are_read_as_their_shortest_decimal() -> None:
    assert segment(0.1, 0.3, 0.1, 1).lrs() == (0.1, 0.2, 0.3)


def test_exponential_range_is_evenly_spaced_in_log() -> None:
    program = exponential_range(1e-6, 1.0, 7)
    assert program.lrs[0] == 1e-6
    assert program.lrs[-1] == 1.0
    ratios = [b / a for a, b in zip(program.lrs, program.lrs[1:], strict=False)]
    assert ratios == pytest.approx([10.0] * 6, rel=1e-12)


def test_linear_range_is_evenly_spaced() -> None:
    assert linear_range(0.1, 0.5, 5, hold=3).lrs == pytest.approx((0.1, 0.2, 0.3, 0.4, 0.5))
    assert linear_range(0.1, 0.5, 5, hold=3).holds == (3,) * 5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1e-3:9e-3", "expected start:stop:step@hold"),
        ("1e-3:9e-3:1e-3", "expected start:stop:step@hold"),
        ("a:9e-3:1e-3@10", "'a' is not a number"),
        ("9e-3:1e-3:1e-3@10", "start must be < stop"),
        ("1e-3:1e-3:1e-3@10", "start must be < stop"),
        ("1e-3:9e-3:0@10", "step must be > 0"),
        ("1e-3:9e-3:-1e-3@10", "step must be > 0"),
        ("1e-3:9e-3:1e-3@0", "hold must be an integer > 0"),
        ("1e-3:9e-3:1e-3@x", "hold must be an integer > 0"),
        ("0:9e-3:1e-3@10", "start must be > 0"),
        ("1e-3:inf:1e-3@10", "finite"),
    ],
)
def test_bad_segments_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(LrkitValueError, match="bad segment") as info:
        parse_segments(text)
    assert problem in str(info.value)


@pytest.mark.parametrize("text", ["", " ", ",,"])
def test_empty_program_is_an_error(text: str) -> None:
    with pytest.raises(LrkitValueError, match="empty"):
        parse_segments(text)


@pytest.mark.parametrize(
    ("width", "points", "step"),
    [
        (0.4, 20, "0.02"),
        (0.93, 20, "0.05"),
        (0.2, 20, "0.01"),
        (3.0, 20, "0.2"),
        (0.011, 20, "0.001"),
    ],
)
def test_nice_step(width: float, points: int, step: str) -> None:
    assert nice_step(width, points) == Decimal(step)


def test_narrow_keeps_the_lead_in_and_steps_finely_across_the_window() -> None:
    program = segments_program(parse_segments("0.1:0.9:0.1@10"))
    narrowed = narrow(program, turn_index=4)  # turn at 0.5: window 0.3 .. 0.7
    assert narrowed.lrs[:2] == (0.1, 0.2)
    fine = narrowed.lrs[2:]
    assert fine[0] == 0.3
    assert fine[-1] == 0.7
    assert len(fine) == 21
    assert [b - a for a, b in itertools.pairwise(fine)] == pytest.approx([0.02] * 20)
    assert narrowed.holds == (10,) * len(narrowed.lrs)


def test_narrowing_the_default_program_around_its_turn() -> None:
    program = segments_program(parse_segments(DEFAULT_SEGMENTS))
    turn = program.lrs.index(1.09)
    narrowed = narrow(program, turn)
    assert narrowed.lrs[: turn - 1] == program.lrs[: turn - 1]
    lead = len([lr for lr in program.lrs if lr < 1.1])
    assert narrowed.lrs[lead:][:3] == pytest.approx((1.1, 1.15, 1.2))
    assert narrowed.lrs[-1] == 2.0
    assert all(b > a for a, b in itertools.pairwise(narrowed.lrs))


def test_narrowing_is_finer_each_round() -> None:
    program = segments_program(parse_segments(DEFAULT_SEGMENTS))
    steps = []
    for _ in range(3):
        turn = len(program.lrs) - 6
        program = narrow(program, turn)
        steps.append(program.lrs[-1] - program.lrs[-2])
    assert steps[0] > steps[1] > steps[2]
    assert not any(math.isnan(s) for s in steps)
