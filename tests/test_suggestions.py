"""Suggestion rules on synthetic curves whose answer is known."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit.rangetest.suggestions import (
    SUGGESTIONS,
    decreasing_run_lengths,
    find_turning_point,
    minimum,
    steepest,
    suggest_all,
    turning_point,
    valley,
)

LRS = np.logspace(-6, 1, 141)  # 0.05 decades apart
X = np.log10(LRS)


def test_steepest_finds_the_inflection_of_a_sigmoid_drop() -> None:
    losses = 2.0 - np.tanh(2.0 * (X + 3.0))  # steepest fall at log10(lr) = -3
    assert steepest(LRS, losses) == pytest.approx(1e-3, rel=1e-9)


def test_steepest_counts_a_repeated_lr_once() -> None:
    # Segments that share an end point (0.1:1:0.1 then 1:10:1) hold lr 1 twice.
    lrs = [0.1, 0.3, 1.0, 1.0, 3.0, 10.0]
    losses = [2.0, 1.95, 1.0, 0.9, 0.3, 0.29]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero step in log lr
        assert steepest(lrs, losses) == 1.0


def test_steepest_is_none_without_descent() -> None:
    assert steepest(LRS, X + 10) is None


def test_minimum_is_a_tenth_of_the_lowest_point() -> None:
    losses = (X + 1.5) ** 2  # lowest at 10 ** -1.5
    assert minimum(LRS, losses) == pytest.approx(10**-1.5 / 10, rel=1e-9)


def test_valley_is_the_middle_of_the_longest_descent() -> None:
    # flat (ties do not descend), then falling from 1e-4 to 1e-2, then rising
    losses = np.where(X < -4, 3.0, np.where(X <= -2, 3.0 - (X + 4), 1.0 + 5 * (X + 2)))
    found = valley(LRS, losses)
    assert found is not None
    assert -3.05 <= math.log10(found) <= -2.95


def test_turning_point_is_the_bottom_and_suggests_half_of_it() -> None:
    losses = (X + 1.0) ** 2
    found = find_turning_point(LRS, losses)
    assert found is not None
    assert found.lr == pytest.approx(0.1, rel=1e-9)
    assert turning_point(LRS, losses) == pytest.approx(0.05, rel=1e-9)


def test_no_turning_point_while_the_loss_still_falls() -> None:
    assert find_turning_point(LRS, -X) is None


def test_a_non_finite_tail_counts_as_rising() -> None:
    losses = -X.copy()
    losses[-5:] = math.inf
    found = find_turning_point(LRS, losses)
    assert found is not None
    assert found.index == len(LRS) - 6


def test_a_lone_dip_is_not_a_turn() -> None:
    losses = (X + 1.0) ** 2
    losses[20] = -5.0  # one outlier far from the true bottom
    found = find_turning_point(LRS, losses)
    assert found is not None
    assert found.lr == pytest.approx(0.1, rel=1e-9)


def test_every_rule_is_listed_and_turning_point_is_the_default() -> None:
    assert list(SUGGESTIONS) == ["turning_point", "valley", "steepest", "minimum"]
    assert set(suggest_all(LRS, (X + 1.0) ** 2)) == set(SUGGESTIONS)


@given(bottom=st.floats(-5.0, 0.0), curvature=st.floats(0.1, 10.0), offset=st.floats(-3, 3))
def test_turning_point_of_any_parabola_is_its_bottom(
    bottom: float, curvature: float, offset: float
) -> None:
    losses = curvature * (X - bottom) ** 2 + offset
    found = find_turning_point(LRS, losses)
    assert found is not None
    assert abs(X[found.index] - bottom) <= 0.025 + 1e-9


@given(cut=st.integers(0, len(LRS)))
def test_rules_ignore_everything_after_the_first_non_finite_loss(cut: int) -> None:
    losses = (X + 1.0) ** 2
    tainted = losses.copy()
    tainted[cut:] = math.nan
    for name, rule in SUGGESTIONS.items():
        if name == "turning_point":
            continue
        assert rule(LRS, tainted) == rule(LRS[:cut], losses[:cut])


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=60))
def test_decreasing_run_lengths_match_the_quadratic_definition(values: list[float]) -> None:
    y = np.array(values)
    expected: list[int] = []
    for i in range(len(values)):
        best = 1
        for j in range(i):
            if values[j] > values[i]:
                best = max(best, expected[j] + 1)
        expected.append(best)
    assert decreasing_run_lengths(y).tolist() == expected
