"""Schedule text, ``NAME:key=value,...``: splitting, and building from a verb's one option."""

from __future__ import annotations

import pytest

from lrkit import schedules
from lrkit.errors import LrkitValueError
from lrkit.schedules.spec import (
    Filled,
    ScheduleTextError,
    batch_size_schedule_for_option,
    lr_schedule_for_option,
    split_pairs,
    split_spec,
)


def test_a_bare_value_after_a_list_continues_it() -> None:
    assert split_spec("multistep:milestones=100,200,gamma=0.5") == (
        "multistep",
        [("milestones", "100,200"), ("gamma", "0.5")],
    )


def test_hyphens_in_keys_read_as_underscores_and_blanks_are_skipped() -> None:
    assert split_spec(" step : step-size = 5 ,, gamma=0.5 ") == (
        "step",
        [("step_size", "5"), ("gamma", "0.5")],
    )


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        ("step:gamma=0.5,gamma=0.9", "gamma is given more than once"),
        ("step:step-size=5,step_size=6", "step_size is given more than once"),
        ("multistep:milestones=1,2,milestones=3", "milestones is given more than once"),
        ("step:=5", "the key in '=5' is blank (expected key=value)"),
        ("step:gamma=0.5, =5", "the key in '=5' is blank"),
        (":gamma=0.5", "the schedule name before ':' is blank"),
        ("  :gamma=0.5", "the schedule name before ':' is blank"),
        ("", "the schedule name before ':' is blank"),
        ("step:gamma", "expected key=value, got 'gamma'"),
    ],
)
def test_faults_in_the_text_are_named(spec: str, detail: str) -> None:
    with pytest.raises(ScheduleTextError) as info:
        split_spec(spec)
    assert detail in info.value.detail
    assert str(info.value) == f"schedule spec {spec!r}: {info.value.detail}"


def test_pairs_without_a_name_refuse_a_repeated_key() -> None:
    assert split_pairs("factor=2,milestones=10,20") == [("factor", "2"), ("milestones", "10,20")]
    with pytest.raises(ScheduleTextError, match="factor is given more than once"):
        split_pairs("factor=2,factor=3")


RATE = Filled(0.1, "the trial's --lr")


def values(schedule: schedules.Schedule, n: int = 60) -> list[float]:
    return [schedule(t) for t in range(n)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("step:gamma=0.5,step_size=10", schedules.step(0.1, 0.5, 10)),
        ("cosine", schedules.cosine(0.1, 40)),
        ("cosine:max_iter=20,min_lr=0.01", schedules.cosine(0.1, 20, 0.01)),
        ("one_cycle", schedules.one_cycle(0.1, 40)),
        ("cyclic:max_lr=1,step_size=5", schedules.cyclic(0.1, 1.0, 5)),
        ("exp:gamma=0.9", schedules.exp(0.1, 0.9)),
    ],
)
def test_the_rate_fills_base_lr_or_max_lr_and_defaults_fill_what_is_left_out(
    spec: str, expected: schedules.Schedule
) -> None:
    built = lr_schedule_for_option("--schedule", spec, rate=RATE, defaults={"max_iter": 40})
    assert values(built) == values(expected)


def test_a_batch_size_schedule_grows_from_the_filled_base() -> None:
    built = batch_size_schedule_for_option(
        "--batch-size-schedule", "factor=2,milestones=1,3,max_batch_size=50", base=Filled(16, "")
    )
    expected = schedules.batch_size_steps(16, 2, [1, 3], 50)
    assert [built(e / 2) for e in range(10)] == [expected(e / 2) for e in range(10)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("step:gamma=0.5", "--schedule 'step:gamma=0.5': step needs step_size"),
        ("step:base_lr=1", "--schedule 'step:base_lr=1': base_lr comes from the trial's --lr"),
        ("step:gamma=x", "--schedule 'step:gamma=x': gamma must be a number, got 'x'"),
        ("step:x=1", "--schedule 'step:x=1': step takes gamma, step_size, not x"),
        (
            "fixed:max_iter=1",
            "--schedule 'fixed:max_iter=1': fixed takes no parameters, not max_iter",
        ),
    ],
)
def test_errors_name_the_option_and_the_text_and_spell_parameters_as_the_text(
    spec: str, message: str
) -> None:
    with pytest.raises(LrkitValueError) as info:
        lr_schedule_for_option("--schedule", spec, rate=RATE, defaults={"max_iter": 40})
    assert str(info.value) == info.value.cli_message()
    assert str(info.value).startswith(message)
