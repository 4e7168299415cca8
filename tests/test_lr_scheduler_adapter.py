"""ScheduleLR: param-group ratios and exact resume through state_dict."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from lrkit.errors import LrkitValueError
from lrkit.schedules import cosine_restarts, step, warmup
from lrkit.training import ScheduleLR


def make_optimizer(lrs: tuple[float, ...] = (0.1,), momentum: float = 0.9) -> torch.optim.SGD:
    torch.manual_seed(0)
    groups = [{"params": [torch.nn.Parameter(torch.randn(3))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)


def train(optimizer: torch.optim.Optimizer, scheduler: ScheduleLR, steps: int) -> list[list[float]]:
    """Take real SGD steps on a quadratic; return every group's lr before each step."""
    seen = []
    for _ in range(steps):
        seen.append([float(g["lr"]) for g in optimizer.param_groups])
        optimizer.zero_grad()
        loss = sum((p**2).sum() for g in optimizer.param_groups for p in g["params"])
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()
        scheduler.step()
    return seen


def test_group_zero_follows_the_schedule_exactly() -> None:
    sched = step(0.3, 0.5, 4)
    optimizer = make_optimizer((0.123,))
    lrs = train(optimizer, ScheduleLR(optimizer, sched), 12)
    assert [row[0] for row in lrs] == [sched(t) for t in range(12)]


def test_other_groups_keep_their_ratio_to_group_zero() -> None:
    sched = cosine_restarts(1.0, 5)
    optimizer = make_optimizer((0.1, 1.0, 0.01))
    for t, row in enumerate(train(optimizer, ScheduleLR(optimizer, sched), 20)):
        assert row == pytest.approx([sched(t), 10 * sched(t), 0.1 * sched(t)], rel=1e-15)


def test_resume_from_state_dicts_continues_exactly() -> None:
    sched = warmup(step(0.2, 0.7, 10), warmup_iters=5)

    straight_opt = make_optimizer((0.2, 0.05))
    straight = train(straight_opt, ScheduleLR(straight_opt, sched), 60)

    first_opt = make_optimizer((0.2, 0.05))
    first_sched = ScheduleLR(first_opt, sched)
    head = train(first_opt, first_sched, 25)
    buffer = io.BytesIO()
    torch.save({"optimizer": first_opt.state_dict(), "scheduler": first_sched.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)

    # A new process: fresh optimizer and scheduler, then the checkpoint.
    resumed_opt = make_optimizer((0.2, 0.05))
    resumed_sched = ScheduleLR(resumed_opt, sched)
    resumed_opt.load_state_dict(saved["optimizer"])
    resumed_sched.load_state_dict(saved["scheduler"])
    with torch.no_grad():
        for group, old in zip(resumed_opt.param_groups, first_opt.param_groups, strict=True):
            group["params"][0].copy_(old["params"][0])
    tail = train(resumed_opt, resumed_sched, 35)

    assert head + tail == straight
    assert all(
        torch.equal(a["params"][0], b["params"][0])
        for a, b in zip(resumed_opt.param_groups, straight_opt.param_groups, strict=True)
    )


def test_state_dict_holds_no_schedule_code() -> None:
    optimizer = make_optimizer()
    state = ScheduleLR(optimizer, step(0.1, 0.5, 3)).state_dict()
    assert "schedule" not in state
    assert state["last_epoch"] == 0


def test_group_zero_with_zero_lr_is_rejected() -> None:
    with pytest.raises(LrkitValueError, match="param group 0"):
        ScheduleLR(make_optimizer((0.0,)), step(0.1, 0.5, 3))


def test_no_warning_in_the_ordinary_loop() -> None:
    optimizer = make_optimizer()
    scheduler = ScheduleLR(optimizer, step(0.1, 0.5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(optimizer, scheduler, 5)
