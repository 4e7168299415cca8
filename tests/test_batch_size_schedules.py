"""Batch-size schedules (Smith, Kindermans, Ying & Le 2018)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit.errors import InvalidParameterError
from lrkit.schedules import batch_size_steps, increase_batch_instead_of_decay, step


def test_batch_grows_by_factor_at_each_milestone() -> None:
    sched = batch_size_steps(128, factor=5, milestones=[60, 120, 160])
    assert [sched(e) for e in (0, 59.5, 60, 119, 120, 160, 200)] == [
        128,
        128,
        640,
        640,
        3200,
        16000,
        16000,
    ]


def test_batch_growth_is_capped() -> None:
    sched = batch_size_steps(128, factor=2, milestones=[1, 2, 3], max_batch_size=300)
    assert [sched(e) for e in range(4)] == [128, 256, 300, 300]


def test_instead_of_decay_grows_until_the_cap_then_decays_lr() -> None:
    plan = increase_batch_instead_of_decay(
        base_lr=0.1, base_batch_size=128, factor=5, milestones=[60, 120, 160], max_batch_size=5000
    )
    assert plan.growth_milestones == (60, 120)
    assert plan.decay_milestones == (160,)
    assert [plan.batch_size(e) for e in (0, 60, 120, 160)] == [128, 640, 3200, 3200]
    assert [plan.lr(e) for e in (0, 60, 120, 160)] == pytest.approx([0.1, 0.1, 0.1, 0.02])


@given(
    base_lr=st.floats(1e-4, 1.0),
    base_batch=st.integers(1, 256),
    factor=st.sampled_from([2, 3, 5, 10]),
    epoch=st.floats(0, 300),
)
def test_noise_scale_matches_the_step_decay_it_replaces(
    base_lr: float, base_batch: int, factor: int, epoch: float
) -> None:
    # Without a binding cap, lr / B falls exactly as the step decay's lr / base_batch.
    milestones = [60, 120, 160]
    plan = increase_batch_instead_of_decay(base_lr, base_batch, factor, milestones, 10**9)
    decay = step(base_lr, 1 / factor, 1)  # one step per milestone passed
    passed = sum(m <= epoch for m in milestones)
    assert plan.lr(epoch) / plan.batch_size(epoch) == pytest.approx(
        decay(passed) / base_batch, rel=1e-12
    )


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"factor": 1.0}, "factor"),
        ({"milestones": [5, 5]}, "milestones"),
        ({"max_batch_size": 64}, "max_batch_size"),
        ({"base_batch_size": 0}, "base_batch_size"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict[str, object], param: str) -> None:
    args: dict[str, object] = {"base_batch_size": 128, "factor": 2.0, "milestones": [10]}
    with pytest.raises(InvalidParameterError) as info:
        batch_size_steps(**(args | kwargs))  # type: ignore[arg-type]
    assert info.value.param == param
