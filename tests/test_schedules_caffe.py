"""Caffe's policies against the textbook's table and hand-computed closed forms."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit.schedules import exp, fixed, inv, multistep, poly, sigmoid, step

TEXTBOOK_STEP_TABLE = [
    (0, 0.1),
    (50, 0.09),
    (100, 0.081),
    (150, 0.0729),
    (200, 0.06561),
    (250, 0.059049),
    (300, 0.0531441),
]


@pytest.mark.parametrize(("t", "expected"), TEXTBOOK_STEP_TABLE)
def test_step_reproduces_the_textbook_table(t: int, expected: float) -> None:
    lr = step(base_lr=0.1, gamma=0.9, step_size=50)(t)
    assert lr == pytest.approx(expected, rel=1e-15)
    assert f"{lr:.10g}" == repr(expected)


def test_step_floors_like_caffe_integer_division() -> None:
    sched = step(base_lr=1.0, gamma=0.5, step_size=3)
    assert [sched(t) for t in range(8)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_fixed_is_constant() -> None:
    sched = fixed(0.03)
    assert {sched(t) for t in (0, 1, 10, 10**6)} == {0.03}


def test_multistep_applies_gamma_at_each_milestone_passed() -> None:
    sched = multistep(base_lr=1.0, gamma=0.1, milestones=[3, 5])
    expected = [1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    assert [sched(t) for t in range(7)] == pytest.approx(expected, rel=1e-15)


def test_exp_hand_table() -> None:
    sched = exp(base_lr=2.0, gamma=0.5)
    assert [sched(t) for t in range(5)] == [2.0, 1.0, 0.5, 0.25, 0.125]


def test_exp_overflow_is_infinite_not_an_error() -> None:
    assert exp(base_lr=1.0, gamma=10.0)(10_000) == math.inf


def test_inv_hand_table() -> None:
    # base_lr * (1 + gamma t)^(-power) with gamma = 1, power = 1: 1 / (1 + t)
    sched = inv(base_lr=1.0, gamma=1.0, power=1.0)
    assert [sched(t) for t in range(4)] == pytest.approx([1.0, 0.5, 1 / 3, 0.25], rel=1e-15)
    # Caffe's LeNet solver: base_lr 0.01, gamma 1e-4, power 0.75 at iteration 10000
    assert inv(0.01, 1e-4, 0.75)(10_000) == pytest.approx(0.01 * 2**-0.75, rel=1e-15)


def test_poly_hand_table_and_zero_after_max_iter() -> None:
    sched = poly(base_lr=1.0, power=2.0, max_iter=4)
    assert [sched(t) for t in range(6)] == [1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]


def test_sigmoid_is_half_at_step_size_and_decays_for_negative_gamma() -> None:
    sched = sigmoid(base_lr=0.2, gamma=-0.05, step_size=100)
    assert sched(100) == pytest.approx(0.1, rel=1e-15)
    assert sched(0) == pytest.approx(0.2 / (1 + math.exp(-5.0)), rel=1e-15)
    assert sched(0) > sched(50) > sched(100) > sched(150)


@given(
    gamma=st.floats(-50.0, 50.0).filter(lambda g: abs(g) > 1e-6),
    t=st.integers(0, 10**7),
    centre=st.integers(0, 10**6),
)
def test_sigmoid_never_overflows_and_stays_in_range(gamma: float, t: int, centre: int) -> None:
    lr = sigmoid(base_lr=1.0, gamma=gamma, step_size=centre)(t)
    assert 0.0 <= lr <= 1.0


@given(
    base_lr=st.floats(1e-8, 10.0),
    gamma=st.floats(1e-3, 1.0),
    step_size=st.integers(1, 500),
    t=st.integers(0, 10**5),
)
def test_step_is_nonincreasing_and_matches_closed_form(
    base_lr: float, gamma: float, step_size: int, t: int
) -> None:
    sched = step(base_lr, gamma, step_size)
    assert sched(t + 1) <= sched(t)
    assert sched(t) == pytest.approx(base_lr * gamma ** (t // step_size), rel=1e-12)
