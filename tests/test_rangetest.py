"""The ask/tell range test, driven without torch: synthetic losses and an analytic problem."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit.errors import LrkitValueError
from lrkit.rangetest.core import RangeTest, divergence_threshold
from lrkit.rangetest.programs import exponential_range, parse_segments, segments_program
from lrkit.rangetest.suggestions import find_turning_point


def test_constant_loss_is_smoothed_exactly_thanks_to_bias_correction() -> None:
    test = RangeTest(exponential_range(1e-3, 1.0, 20), smoothing=0.98)
    while test.ask() is not None:
        test.tell(2.5)
    record = test.record()
    assert [p.smoothed_loss for p in record.points] == pytest.approx([2.5] * 20, rel=1e-12)
    assert record.diverged_at is None
    assert record.stop_reason == "completed the program"


def test_smoothing_is_the_bias_corrected_moving_average() -> None:
    losses = [4.0, 2.0, 3.0, 1.0]
    test = RangeTest(exponential_range(1e-3, 1.0, 4), smoothing=0.5, diverge_factor=100)
    for loss in losses:
        test.ask()
        test.tell(loss)
    average, expected = 0.0, []
    for t, loss in enumerate(losses):
        average = 0.5 * average + 0.5 * loss
        expected.append(average / (1 - 0.5 ** (t + 1)))
    assert [p.smoothed_loss for p in test.record().points] == pytest.approx(expected)


def test_non_finite_loss_stops_the_test_where_it_happened() -> None:
    test = RangeTest(exponential_range(1e-3, 1.0, 10))
    count = 0
    while (step := test.ask()) is not None:
        count += 1
        test.tell(math.nan if step.iteration == 6 else 1.0)
    record = test.record()
    assert count == 7
    assert record.diverged_at == pytest.approx(exponential_range(1e-3, 1.0, 10).lrs[6])
    assert "not finite" in record.stop_reason
    assert record.holds[-1].complete is False


def test_smoothed_loss_above_k_times_best_stops_the_test() -> None:
    test = RangeTest(exponential_range(1e-3, 1.0, 50), smoothing=0.0, diverge_factor=3.0)
    while (step := test.ask()) is not None:
        test.tell(1.0 if step.iteration < 10 else 3.5)
    record = test.record()
    assert len(record.points) == 11
    assert "exceeded 3x" in record.stop_reason


def run_unsmoothed(losses: list[float], factor: float = 4.0) -> tuple[int, str]:
    """Tell ``losses`` one a step (no smoothing); the points told and the stop reason."""
    test = RangeTest(exponential_range(1e-4, 1.0, len(losses)), 0.0, factor)
    while (step := test.ask()) is not None:
        test.tell(losses[step.iteration])
    record = test.record()
    return len(record.points), record.stop_reason


def test_a_loss_falling_below_zero_does_not_stop_the_test() -> None:
    """A Poisson or Gaussian NLL without its constant goes below zero as it falls: "4x its
    minimum" would then lie below the minimum, and the test stopped at once (fresh set 5's
    counts problem: at lr 0.0005, the loss still falling)."""
    falling = [0.6, 0.3, -0.1, -0.6, -1.2, -1.9, -2.5, -2.7, -2.72, -2.71, -2.73, -2.7]
    told, reason = run_unsmoothed(falling)
    assert (told, reason) == (len(falling), "completed the program")


def test_a_loss_below_zero_that_blows_up_stops_the_test() -> None:
    # Minimum -2, first 1: the scale is max(2, 3) = 3, the threshold -2 + 3 * 3 = 7.
    losses = [1.0, -1.0, -2.0, -1.5, 6.9, 7.1, 0.0]
    told, reason = run_unsmoothed(losses)
    assert told == 6
    assert reason.startswith("diverged at lr") and "not above zero" in reason


@given(st.lists(st.floats(0, 10), min_size=2, max_size=30), st.floats(-1e3, 1e3))
def test_a_loss_that_only_falls_never_stops_the_test_wherever_its_zero_is(
    drops: list[float], start: float
) -> None:
    """Whatever constant a loss leaves out (so wherever it crosses zero), one that never
    rises runs the whole program."""
    losses = [start - sum(drops[:i]) for i in range(len(drops))]
    assert run_unsmoothed(losses) == (len(losses), "completed the program")


@given(st.floats(-1e6, 0), st.floats(-1e6, 1e6), st.floats(1.01, 100))
def test_below_zero_the_threshold_is_the_larger_scale_above_the_minimum(
    minimum: float, first: float, factor: float
) -> None:
    scale = max(-minimum, first - minimum)
    threshold = divergence_threshold(minimum, first, factor)
    assert threshold == minimum + (factor - 1) * scale
    assert threshold >= minimum


@given(st.floats(1e-6, 1e6), st.floats(1e-6, 1e6), st.floats(1.01, 100))
def test_with_a_positive_minimum_the_rule_is_factor_times_the_minimum(
    minimum: float, first: float, factor: float
) -> None:
    assert divergence_threshold(minimum, first, factor) == factor * minimum


def test_holds_average_their_losses_and_take_an_eval_loss() -> None:
    test = RangeTest(segments_program(parse_segments("0.1:0.2:0.1@3")))
    losses = iter([3.0, 2.0, 1.0, 6.0, 5.0, 4.0])
    while (step := test.ask()) is not None:
        test.tell(next(losses))
        if step.ends_hold:
            test.tell_eval(10 * step.lr)
    holds = test.record().holds
    assert [(h.lr, h.mean_loss, h.eval_loss, h.iterations) for h in holds] == [
        (0.1, 2.0, 1.0, 3),
        (0.2, 5.0, 2.0, 3),
    ]


def test_protocol_misuse_is_an_error() -> None:
    test = RangeTest(exponential_range(1e-3, 1.0, 3))
    with pytest.raises(LrkitValueError):
        test.tell(1.0)
    test.ask()
    with pytest.raises(LrkitValueError):
        test.ask()
    with pytest.raises(LrkitValueError):
        test.tell_eval(1.0)


def test_gradient_descent_on_a_quadratic_turns_where_the_theory_says() -> None:
    """f(w) = a w^2 / 2 under gradient descent: w <- (1 - lr a) w shrinks for lr < 2/a and
    grows for lr > 2/a, so the loss turns near 2/a and the test diverges past it."""
    a = 4.0
    w = 1.0
    test = RangeTest(exponential_range(1e-3, 10.0, 200), smoothing=0.0)
    while (step := test.ask()) is not None:
        w = (1.0 - step.lr * a) * w
        test.tell(0.5 * a * w * w)
    record = test.record()
    assert record.diverged_at is not None
    assert 2 / a < record.diverged_at < 4 / a
    lrs = np.array([p.lr for p in record.points])
    losses = np.array([p.loss for p in record.points])
    turn = find_turning_point(lrs, losses)
    assert turn is not None
    assert 1 / a < turn.lr < 2 / a * 1.2


def test_bad_settings_are_named() -> None:
    with pytest.raises(LrkitValueError, match="smoothing"):
        RangeTest(exponential_range(1e-3, 1.0, 3), smoothing=1.0)
    with pytest.raises(LrkitValueError, match="diverge_factor"):
        RangeTest(exponential_range(1e-3, 1.0, 3), diverge_factor=1.0)
