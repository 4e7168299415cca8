"""Modern schedules and composition: closed forms at chosen iterations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit.schedules import (
    constant,
    cosine,
    cosine_restarts,
    cyclic,
    fixed,
    join,
    linear,
    one_cycle,
    step,
    warmup,
)


def test_constant_with_factor_then_base() -> None:
    sched = constant(base_lr=0.1, factor=0.5, total_iters=3)
    assert [sched(t) for t in range(5)] == [0.05, 0.05, 0.05, 0.1, 0.1]
    assert constant(0.2)(123) == 0.2


def test_linear_default_decays_to_zero_and_holds() -> None:
    sched = linear(base_lr=1.0, max_iter=4)
    assert [sched(t) for t in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


def test_cosine_hits_base_half_and_floor() -> None:
    sched = cosine(base_lr=1.0, max_iter=100, min_lr=0.1)
    assert sched(0) == 1.0
    assert sched(50) == pytest.approx(0.55, rel=1e-15)
    assert sched(100) == pytest.approx(0.1, rel=1e-15)
    assert sched(1000) == sched(100)


def test_cosine_restarts_cycle_lengths_grow_by_t_mult() -> None:
    sched = cosine_restarts(base_lr=1.0, cycle_iters=10, t_mult=2)
    # cycles start at 0, 10, 30, 70
    for start in (0, 10, 30, 70):
        assert sched(start) == 1.0
    assert sched(15) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 20)), rel=1e-15)
    assert sched(29) < sched(28) < sched(10)


def test_cosine_restarts_with_t_mult_one_is_periodic() -> None:
    sched = cosine_restarts(base_lr=0.3, cycle_iters=7, min_lr=0.01)
    assert [sched(t) for t in range(7)] == [sched(t + 70) for t in range(7)]


def test_cyclic_triangular_hand_table() -> None:
    sched = cyclic(base_lr=0.1, max_lr=0.5, step_size=2)
    expected = [0.1, 0.3, 0.5, 0.3, 0.1, 0.3, 0.5]
    assert [sched(t) for t in range(7)] == pytest.approx(expected, rel=1e-15)


def test_cyclic_triangular2_halves_each_cycle() -> None:
    sched = cyclic(base_lr=1e-3, max_lr=0.801, step_size=5, mode="triangular2")
    peaks = [sched(5 + 10 * k) - 1e-3 for k in range(4)]
    assert peaks == pytest.approx([0.8, 0.4, 0.2, 0.1], rel=1e-12)


def test_cyclic_exp_range_scales_by_gamma_to_the_iteration() -> None:
    sched = cyclic(base_lr=0.1, max_lr=1.1, step_size=4, mode="exp_range", gamma=0.9)
    assert sched(4) == pytest.approx(0.1 + 1.0 * 0.9**4, rel=1e-15)


def test_cyclic_asymmetric_half_cycles() -> None:
    sched = cyclic(base_lr=1.0, max_lr=2.0, step_size=1, step_size_down=3)
    assert [sched(t) for t in range(5)] == pytest.approx([1.0, 2.0, 5 / 3, 4 / 3, 1.0])


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_endpoints(anneal: str) -> None:
    sched = one_cycle(max_lr=1.0, max_iter=101, pct_start=0.3, anneal=anneal)  # type: ignore[arg-type]
    peak = 0.3 * 101 - 1
    assert sched(0) == pytest.approx(1.0 / 25, rel=1e-15)
    lrs = [sched(t) for t in range(101)]
    assert lrs.index(max(lrs)) in (math.floor(peak), math.ceil(peak))
    assert max(lrs) > 0.99
    assert sched(100) == pytest.approx(1.0 / 25 / 1e4, rel=1e-12)
    assert sched(500) == sched(100)


def test_one_cycle_three_phase_returns_to_initial_at_twice_the_peak() -> None:
    sched = one_cycle(max_lr=1.0, max_iter=100, pct_start=0.25, three_phase=True, div_factor=10)
    # phase ends: 24 (peak), 48 (back to initial), 99 (minimum)
    assert sched(24) == pytest.approx(1.0)
    assert sched(48) == pytest.approx(0.1)
    assert sched(99) == pytest.approx(0.1 / 1e4)


def test_join_runs_each_schedule_on_its_own_clock() -> None:
    sched = join([fixed(1.0), step(0.5, 0.5, 2)], boundaries=[3])
    assert [sched(t) for t in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_linear_warmup_ramps_to_the_schedule_then_follows_it() -> None:
    sched = warmup(cosine(1.0, 10), warmup_iters=4)
    assert [sched(t) for t in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert sched(9) == cosine(1.0, 10)(5)


def test_exponential_warmup_is_geometric() -> None:
    sched = warmup(fixed(1.0), warmup_iters=3, mode="exp", start_factor=1e-3)
    assert [sched(t) for t in range(4)] == pytest.approx([1e-3, 1e-2, 1e-1, 1.0], rel=1e-12)


@given(
    base_lr=st.floats(1e-6, 10.0),
    max_iter=st.integers(1, 10_000),
    floor_fraction=st.floats(0.0, 1.0),
    t=st.integers(0, 20_000),
)
def test_cosine_stays_between_floor_and_base(
    base_lr: float, max_iter: int, floor_fraction: float, t: int
) -> None:
    min_lr = base_lr * floor_fraction
    lr = cosine(base_lr, max_iter, min_lr)(t)
    assert min_lr * (1 - 1e-12) <= lr <= base_lr * (1 + 1e-12)


@given(
    base_lr=st.floats(1e-6, 1.0),
    ratio=st.floats(1.01, 100.0),
    up=st.integers(1, 50),
    down=st.integers(1, 50),
    t=st.integers(0, 5_000),
)
def test_cyclic_stays_between_base_and_max(
    base_lr: float, ratio: float, up: int, down: int, t: int
) -> None:
    lr = cyclic(base_lr, base_lr * ratio, up, down)(t)
    assert base_lr * (1 - 1e-12) <= lr <= base_lr * ratio * (1 + 1e-12)


def test_triangular2_after_thousands_of_cycles_is_base_lr_not_an_overflow() -> None:
    sched = cyclic(base_lr=0.1, max_lr=1.0, step_size=1, mode="triangular2")
    assert sched(5001) == 0.1  # 2,500 cycles in: the amplitude has halved away
