"""Going on from where a trial stopped: the clock resumes at any step with the same steps,
and a trial trained to E1 and then on to E2 (on either loop, and across loops) takes the steps
of one trained to E2 at once."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.schedules import batch_size_steps, cosine
from lrkit.training.clock import Clock
from lrkit.training.loop import TrialOutcome, TrialPlan, train_trial
from lrkit.training.optimizers import make_optimizer
from lrkit.training.vectorized.loop import StackedRun, StackedTrial


def data(n: int, seed: int) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorData(x, (x[:, 0] - x[:, 2] > 0).long())


TRAIN, VAL, TEST = data(200, 0), data(50, 1), data(50, 2)


def model(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))


def steps(clock: Clock) -> list[tuple[int, float, list[list[int]], bool]]:
    return [(s.iteration, s.progress, s.examples.tolist(), s.check) for s in clock]


@given(
    n=st.integers(5, 60),
    batch_size=st.integers(1, 16),
    epochs=st.sampled_from([0.5, 1.0, 1.3, 2.0, 3.0]),
    eval_every=st.sampled_from([0.25, 0.5, 1.0]),
    seeds=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    cut=st.floats(0.05, 0.95),
    grow=st.booleans(),
)
def test_a_clock_resumed_at_any_step_takes_the_same_steps(
    n: int,
    batch_size: int,
    epochs: float,
    eval_every: float,
    seeds: list[int],
    cut: float,
    grow: bool,
) -> None:
    batch_size = min(batch_size, n)
    eval_every = min(eval_every, epochs)
    schedule = batch_size_steps(batch_size, 2, [1], max_batch_size=n) if grow else None
    cpu = torch.device("cpu")

    def clock(until: float, start: object = None) -> Clock:
        return Clock(n, until, eval_every, batch_size, seeds, cpu, schedule, start)  # type: ignore[arg-type]

    whole = steps(clock(epochs))
    first = clock(epochs * cut)
    head = steps(first)
    if first.position.progress >= epochs - 1e-9:
        return  # the cut fell on the last step
    tail = steps(clock(epochs, first.position))
    assert [s[:3] for s in head + tail] == [s[:3] for s in whole]
    # The checks are the whole run's, and the one that ended the first part.
    checks = {s[0] for s in whole if s[3]}
    assert {s[0] for s in head + tail if s[3]} == checks | {head[-1][0]}


def plain(plan: TrialPlan, optimizer: str) -> tuple[TrialOutcome, nn.Module]:
    net = model(plan.seed)
    opt = make_optimizer(optimizer, net, plan.lr, momentum=0.9, weight_decay=1e-3)
    return train_trial(net, opt, nn.CrossEntropyLoss(), TRAIN, VAL, TEST, plan), net


def stacked(plans: list[TrialPlan], momentum: float) -> list[TrialOutcome]:
    trials = [StackedTrial(p, momentum, 1e-3) for p in plans]
    run = StackedRun(
        [model(p.seed) for p in plans], trials, nn.CrossEntropyLoss(), TRAIN, VAL, TEST
    )
    return run.run()


def weights_of(outcome: TrialOutcome) -> dict[str, torch.Tensor]:
    assert outcome.checkpoint is not None
    return outcome.checkpoint.model


def assert_same_trial(direct: TrialOutcome, resumed: TrialOutcome, split: int) -> None:
    """Same status, test accuracy and weights, and the same curve, but for one more check
    where the first part ended when that is not a check of the direct run (the next check's
    training loss then averages the steps since it)."""
    assert resumed.status == direct.status == "done"
    for name, value in weights_of(direct).items():
        assert torch.equal(weights_of(resumed)[name], value), name
    assert resumed.test_accuracy == direct.test_accuracy
    on_grid = {p.iteration for p in direct.points}
    kept = [p for p in resumed.points if p.iteration in on_grid]
    assert {p.iteration for p in resumed.points} - on_grid <= {split}
    assert [p.iteration for p in kept] == [p.iteration for p in direct.points]
    after_split = split not in on_grid
    for got, want in zip(kept, direct.points, strict=True):
        assert (got.epoch, got.val_loss, got.val_accuracy) == (
            want.epoch,
            want.val_loss,
            want.val_accuracy,
        )
        if got.iteration < split or not after_split:
            assert got.train_loss == want.train_loss or got.iteration == 0
        elif after_split:
            after_split = False  # the first check after the split: a shorter window


PLANS = [
    pytest.param("sgd", TrialPlan(0.3, 16, 3.0, 0.5, 0), id="sgd"),
    pytest.param("momentum", TrialPlan(0.05, 16, 3.0, 0.5, 1), id="momentum"),
    pytest.param("adam", TrialPlan(0.01, 32, 3.0, 1.0, 2), id="adam"),
    pytest.param(
        "momentum",
        TrialPlan(0.1, 16, 3.0, 0.5, 3, schedule=cosine(0.1, 39), batch_size_schedule=None),
        id="cosine",
    ),
    pytest.param(
        "sgd",
        TrialPlan(0.2, 8, 3.0, 0.5, 4, batch_size_schedule=batch_size_steps(8, 2, [1, 2])),
        id="growing-batch",
    ),
]


@pytest.mark.parametrize(("optimizer", "plan"), PLANS)
@pytest.mark.parametrize("first_epochs", [1.0, 1.3])
def test_the_plain_loop_goes_on_from_a_checkpoint_as_if_it_never_stopped(
    optimizer: str, plan: TrialPlan, first_epochs: float
) -> None:
    plan = dataclasses.replace(plan, keep_checkpoint=True)
    direct, _ = plain(plan, optimizer)
    first, _ = plain(dataclasses.replace(plan, epochs=first_epochs), optimizer)
    assert first.checkpoint is not None
    resumed, _ = plain(dataclasses.replace(plan, start=first.checkpoint), optimizer)
    assert_same_trial(direct, resumed, first.points[-1].iteration)
    assert resumed.seconds >= first.seconds


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_stack_goes_on_from_its_checkpoints_and_the_plain_loop_from_the_stacks(
    momentum: float,
) -> None:
    optimizer = "momentum" if momentum else "sgd"
    plans = [
        TrialPlan(lr, 16, 3.0, 0.5, seed, keep_checkpoint=True)
        for lr, seed in ((0.05, 0), (0.2, 0), (0.1, 1))
    ]
    direct = stacked(plans, momentum)
    firsts = stacked([dataclasses.replace(p, epochs=1.3) for p in plans], momentum)
    split = firsts[0].points[-1].iteration
    resumed = stacked(
        [dataclasses.replace(p, start=f.checkpoint) for p, f in zip(plans, firsts, strict=True)],
        momentum,
    )
    for d, r in zip(direct, resumed, strict=True):
        assert_same_trial(d, r, split)
    # Across loops: the plain loop goes on from the stack's checkpoints (torch's formats).
    for plan, first in zip(plans, firsts, strict=True):
        alone, _ = plain(plan, optimizer)
        across, _ = plain(dataclasses.replace(plan, start=first.checkpoint), optimizer)
        for name, value in weights_of(alone).items():
            torch.testing.assert_close(weights_of(across)[name], value, rtol=1e-5, atol=1e-7)


def test_a_stack_goes_on_from_the_plain_loops_checkpoints() -> None:
    plans = [TrialPlan(lr, 16, 2.0, 0.5, 0, keep_checkpoint=True) for lr in (0.05, 0.3)]
    firsts = [plain(dataclasses.replace(p, epochs=0.7), "momentum")[0] for p in plans]
    resumed = stacked(
        [dataclasses.replace(p, start=f.checkpoint) for p, f in zip(plans, firsts, strict=True)],
        0.9,
    )
    # The stack's batched arithmetic and the plain loop's round differently: float32 weights
    # near zero after 150 momentum steps differ by a few 1e-7 on some CPUs.
    for plan, outcome in zip(plans, resumed, strict=True):
        alone, _ = plain(plan, "momentum")
        for name, value in weights_of(alone).items():
            torch.testing.assert_close(weights_of(outcome)[name], value, rtol=1e-5, atol=1e-6)


def test_a_run_cannot_start_past_its_end() -> None:
    plan = TrialPlan(0.1, 16, 1.0, 0.5, 0, keep_checkpoint=True)
    first, _ = plain(plan, "sgd")
    with pytest.raises(ValueError, match="already at epoch 1"):
        plain(dataclasses.replace(plan, start=first.checkpoint), "sgd")


def test_trials_that_start_at_different_places_do_not_stack() -> None:
    plan = TrialPlan(0.1, 16, 2.0, 0.5, 0, keep_checkpoint=True)
    first, _ = plain(dataclasses.replace(plan, epochs=1.0), "sgd")
    with pytest.raises(ValueError, match="starting position"):
        stacked([plan, dataclasses.replace(plan, start=first.checkpoint)], 0.0)
