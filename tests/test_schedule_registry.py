"""The registry reads parameters and formulas from the factories."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lrkit import schedules
from lrkit.schedules.base import Schedule
from lrkit.schedules.registry import SCHEDULES, all_params, describe, schedule_names

CAFFE = ("fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid")
MODERN = ("constant", "linear", "cosine", "cosine_restarts", "cyclic", "one_cycle", "wsd")


def test_every_policy_is_registered() -> None:
    assert set(CAFFE + MODERN) == set(schedule_names())


@pytest.mark.parametrize("name", CAFFE + MODERN)
def test_every_schedule_has_a_formula_a_summary_and_help_for_each_parameter(name: str) -> None:
    info = describe(name)
    assert info.formula.startswith("lr(t) =")
    assert info.summary
    assert all(p.help for p in info.params), [p.name for p in info.params if not p.help]


def test_parameter_kinds_and_defaults_come_from_the_signature() -> None:
    info = describe("cyclic")
    kinds = {p.name: (p.kind, p.required, p.default) for p in info.params}
    assert kinds["base_lr"] == ("float", True, None)
    assert kinds["step_size"] == ("int", True, None)
    assert kinds["step_size_down"] == ("int", False, None)
    assert kinds["mode"] == ("choice", False, "triangular")
    assert info.param("mode") is not None
    assert info.param("mode").choices == ("triangular", "triangular2", "exp_range")  # type: ignore[union-attr]
    assert describe("multistep").param("milestones").kind == "ints"  # type: ignore[union-attr]
    assert describe("one_cycle").param("three_phase").kind == "flag"  # type: ignore[union-attr]


def test_create_builds_the_same_schedule_as_the_factory() -> None:
    made = schedules.create("step", base_lr=0.1, gamma=0.9, step_size=50)
    direct = schedules.step(0.1, 0.9, 50)
    assert [made(t) for t in range(0, 400, 7)] == [direct(t) for t in range(0, 400, 7)]


def test_sample_and_json_shape() -> None:
    curve = schedules.sample(schedules.step(0.1, 0.9, 50), 301, 50, name="step", params={"a": 1})
    assert curve.iterations == (0, 50, 100, 150, 200, 250, 300)
    document = curve.to_json()
    assert document["name"] == "step"
    assert document["params"] == {"a": 1}
    assert document["points"][1] == {"iteration": 50, "lr": curve.lrs[1]}


def test_all_params_lists_each_name_once_with_every_schedule_that_takes_it() -> None:
    params = all_params()
    assert len({p.name for p in params}) == len(params)
    gamma = next(p for p in params if p.name == "gamma")
    assert gamma.kind == "float"
    assert [name for name, _ in gamma.uses] == [
        "step",
        "multistep",
        "exp",
        "inv",
        "sigmoid",
        "cyclic",
    ]
    assert gamma.option == "--gamma"
    mode = next(p for p in params if p.name == "mode")
    assert mode.choices == ("triangular", "triangular2", "exp_range")
    every = {(name, p.name) for name in schedule_names() for p in describe(name).params}
    assert {(name, p.name) for shared in params for name, p in shared.uses} == every


def stepped(base_lr: float, gamma: int) -> Schedule:
    """A factory written for this test only, whose gamma is an integer.

    lr(t) = base_lr * gamma

    Args:
        base_lr: the rate.
        gamma: an integer, unlike every other gamma.
    """
    return lambda t: base_lr * gamma


@pytest.fixture
def with_stepped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(SCHEDULES, "stepped", stepped)
    yield
    describe.cache_clear()


def test_one_name_with_two_kinds_is_refused(with_stepped: None) -> None:
    with pytest.raises(TypeError, match="parameter gamma is float in step but int in stepped"):
        all_params()
