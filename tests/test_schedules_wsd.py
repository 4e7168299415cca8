"""Warm-up-stable-decay (``lrkit.schedules.wsd``): a hand-computed table, its properties, the
horizons' shared constant part, the CLI (PyTorch's chained schedulers as its oracle are in
``test_schedules_torch_equivalence.py``)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cli_run import run
from lrkit.errors import LrkitValueError
from lrkit.schedules import cooldown_start, create, warmup, wsd
from lrkit.schedules.stable_decay import COOLDOWNS, cooldown_iters
from lrkit.training import ScheduleLR


def test_the_table_by_hand() -> None:
    """max_iter 10, cooldown 0.4: D = 4, s = 6; f = (t - 6) / 4 at t = 6 .. 9."""
    expected = {
        "linear": [1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0, 0],
        "cosine": [1] * 7
        + [(1 + math.cos(math.pi / 4)) / 2, 0.5, (1 - math.cos(math.pi / 4)) / 2, 0, 0],
        "1-sqrt": [1] * 7 + [0.5, 1 - math.sqrt(0.5), 1 - math.sqrt(0.75), 0, 0],
    }
    for shape, values in expected.items():
        schedule = wsd(1.0, 10, 0.4, shape)  # type: ignore[arg-type]
        assert [schedule(t) for t in range(12)] == pytest.approx(values, abs=1e-15), shape
    with_floor = wsd(2.0, 10, 0.4, "linear", min_lr=0.5)
    assert [with_floor(t) for t in (5, 7, 8, 10)] == pytest.approx([2.0, 1.625, 1.25, 0.5])


@given(
    base_lr=st.floats(1e-4, 10.0),
    max_iter=st.integers(1, 5000),
    fraction=st.floats(1e-3, 1.0),
    shape=st.sampled_from(COOLDOWNS),
    floor=st.floats(0.0, 1.0),
)
def test_constant_then_a_monotone_cooldown_to_the_floor(
    base_lr: float, max_iter: int, fraction: float, shape: str, floor: float
) -> None:
    min_lr = floor * base_lr
    schedule = wsd(base_lr, max_iter, fraction, shape, min_lr)  # type: ignore[arg-type]
    start = cooldown_start(max_iter, fraction)
    assert start == max_iter - cooldown_iters(max_iter, fraction) >= 0
    lrs = [schedule(t) for t in range(max_iter + 3)]
    assert all(lr == base_lr for lr in lrs[: start + 1])  # g(0) = 1: continuous at s
    assert all(lr == min_lr for lr in lrs[max_iter:])
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    assert all(min_lr <= lr <= base_lr for lr in lrs)


def test_runs_of_several_lengths_share_the_constant_part() -> None:
    """A horizon ladder branches each cooldown off one constant-rate run."""
    horizons = (1000, 2000, 4000)
    schedules = {h: wsd(0.1, h, 0.2, "1-sqrt") for h in horizons}
    starts = {h: cooldown_start(h, 0.2) for h in horizons}
    assert starts == {1000: 800, 2000: 1600, 4000: 3200}
    constant = wsd(0.1, 10**9, 1e-9)  # a run that never cools down within these horizons
    for h, schedule in schedules.items():
        assert all(schedule(t) == constant(t) for t in range(0, starts[h], 7))
        assert schedule(starts[h] + 1) < 0.1 and schedule(h) == 0.0


def test_a_warm_up_goes_in_front_and_the_adapter_drives_an_optimizer() -> None:
    schedule = warmup(wsd(0.5, 100, 0.3, "cosine"), 10)
    assert schedule(0) == 0.0 and schedule(5) == pytest.approx(0.25) and schedule(10) == 0.5
    assert schedule(10 + 70) == 0.5 and schedule(10 + 100) == 0.0
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.5)
    adapter = ScheduleLR(optimizer, schedule)
    seen = []
    for _ in range(115):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        adapter.step()
    assert seen == pytest.approx([schedule(t) for t in range(115)], rel=1e-12, abs=1e-15)


def test_by_name_and_bad_parameters() -> None:
    assert create("wsd", base_lr=1.0, max_iter=10, cooldown_fraction=0.4)(8) == pytest.approx(0.5)
    with pytest.raises(LrkitValueError, match="cooldown must be one of linear, cosine, 1-sqrt"):
        wsd(1.0, 10, cooldown="sqrt")  # type: ignore[arg-type]
    with pytest.raises(LrkitValueError, match="cooldown_fraction"):
        wsd(1.0, 10, cooldown_fraction=0.0)
    with pytest.raises(LrkitValueError, match="min_lr"):
        wsd(1.0, 10, min_lr=2.0)


def test_the_cli_prints_it_and_refuses_a_bad_shape_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["schedule", "wsd", "--base-lr", "1", "--max-iter", "10", "--cooldown-fraction"]
    args += ["0.4", "--cooldown", "1-sqrt", "--iters", "11", "--every", "1", "--format", "csv"]
    code, out, err = run(args, capsys)
    assert code == 0, err
    rows = [line.split(",") for line in out.strip().splitlines()[1:]]
    expected = [1, 0.5, 1 - math.sqrt(0.5), 1 - math.sqrt(0.75), 0]
    assert [float(lr) for _, lr in rows][6:] == pytest.approx(expected)
    code, out, err = run(
        ["schedule", "wsd", "--base-lr", "1", "--max-iter", "10", "--cooldown", "sqrt"], capsys
    )
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "lrkit schedule: error: --cooldown must be one of linear, cosine, 1-sqrt, got 'sqrt'"
    ]
    code, out, _ = run(["schedule", "--list"], capsys)
    assert code == 0 and "wsd" in out and "1 - sqrt(f)" in out
