"""Bad schedule arguments raise a ValueError subclass whose message names the parameter."""

from __future__ import annotations

import math

import pytest

from lrkit import schedules
from lrkit.errors import InvalidParameterError, LrkitValueError

BAD = [
    ("step", {"base_lr": 0.0, "gamma": 0.9, "step_size": 5}, "base_lr"),
    ("step", {"base_lr": -1.0, "gamma": 0.9, "step_size": 5}, "base_lr"),
    ("step", {"base_lr": math.inf, "gamma": 0.9, "step_size": 5}, "base_lr"),
    ("step", {"base_lr": math.nan, "gamma": 0.9, "step_size": 5}, "base_lr"),
    ("step", {"base_lr": 0.1, "gamma": 0.0, "step_size": 5}, "gamma"),
    ("step", {"base_lr": 0.1, "gamma": -0.5, "step_size": 5}, "gamma"),
    ("step", {"base_lr": 0.1, "gamma": 0.9, "step_size": 0}, "step_size"),
    ("step", {"base_lr": 0.1, "gamma": 0.9, "step_size": 2.5}, "step_size"),
    ("multistep", {"base_lr": 0.1, "gamma": 0.9, "milestones": [10, 10]}, "milestones"),
    ("multistep", {"base_lr": 0.1, "gamma": 0.9, "milestones": [20, 10]}, "milestones"),
    ("multistep", {"base_lr": 0.1, "gamma": 0.9, "milestones": []}, "milestones"),
    ("poly", {"base_lr": 0.1, "power": 1.0, "max_iter": 0}, "max_iter"),
    ("poly", {"base_lr": 0.1, "power": -1.0, "max_iter": 10}, "power"),
    ("inv", {"base_lr": 0.1, "gamma": 0.1, "power": -0.5}, "power"),
    ("exp", {"base_lr": "0.1", "gamma": 0.9}, "base_lr"),
    ("sigmoid", {"base_lr": 0.1, "gamma": 0.0, "step_size": 10}, "gamma"),
    ("cosine", {"base_lr": 0.1, "max_iter": 10, "min_lr": 0.2}, "min_lr"),
    ("cyclic", {"base_lr": 0.1, "max_lr": 0.05, "step_size": 10}, "max_lr"),
    ("cyclic", {"base_lr": 0.1, "max_lr": 1.0, "step_size": 10, "mode": "sawtooth"}, "mode"),
    ("one_cycle", {"max_lr": 0.1, "max_iter": 10, "pct_start": 0.05}, "pct_start"),
    (
        "one_cycle",
        {"max_lr": 0.1, "max_iter": 100, "pct_start": 0.6, "three_phase": True},
        "pct_start",
    ),
    ("one_cycle", {"max_lr": 0.1, "max_iter": 100, "anneal": "cosine"}, "anneal"),
]


@pytest.mark.parametrize(("name", "params", "param"), BAD)
def test_bad_parameter_is_named(name: str, params: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        schedules.create(name, **params)
    assert isinstance(info.value, ValueError)
    assert info.value.param == param
    assert str(info.value).startswith(f"{param} must be ")
    assert info.value.cli_message().startswith("--" + param.replace("_", "-") + " must be ")


def test_unknown_name_lists_the_names() -> None:
    with pytest.raises(
        LrkitValueError, match="unknown schedule 'stepp'; choose one of: fixed, step"
    ):
        schedules.create("stepp", base_lr=0.1)


def test_parameter_a_schedule_does_not_take() -> None:
    with pytest.raises(LrkitValueError, match="step does not take power"):
        schedules.create("step", base_lr=0.1, gamma=0.9, step_size=5, power=2.0)


def test_missing_required_parameter() -> None:
    with pytest.raises(LrkitValueError, match="step needs step_size"):
        schedules.create("step", base_lr=0.1, gamma=0.9)


def test_warmup_and_join_check_their_arguments() -> None:
    with pytest.raises(InvalidParameterError, match="warmup_iters"):
        schedules.warmup(schedules.fixed(0.1), 0)
    with pytest.raises(InvalidParameterError, match="warmup_start_factor"):
        schedules.warmup(schedules.fixed(0.1), 5, mode="exp", start_factor=0.0)
    with pytest.raises(InvalidParameterError, match="boundaries"):
        schedules.join([schedules.fixed(0.1), schedules.fixed(0.2)], [])
