"""Faults while running: memory that stays bounded on any budget, workers that end with their
parent, no trial left ``running`` after an interruption, a closed output pipe, and a Ray
cluster that cannot be reached."""

from __future__ import annotations

import gc
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.training.data_parallel import train_data_parallel
from lrkit.training.loop import TrialPlan, train_trial
from lrkit.training.running_loss import RunningLoss
from lrkit.training.vectorized.loop import StackedRun, StackedTrial

# Memory: the training loss between two checks


def test_the_interval_mean_is_the_float64_mean_of_the_steps() -> None:
    losses = RunningLoss(2, torch.device("cpu"))
    steps = torch.tensor([[0.5, 2.0], [1.25, 3.0], [0.25, 4.0]], dtype=torch.float32)
    for step in steps:
        losses.add(step)
    interval = losses.read(iteration=12)
    assert interval.mean == (2.0 / 3.0, 3.0)
    assert interval.diverged_at == (None, None)


@pytest.mark.parametrize(
    ("values", "diverged_at"),
    [
        ([1.0, math.nan, 1.0, 1.0], 11),
        ([1.0, 1.0, 1.0, math.inf], 13),
        ([math.inf, -math.inf, 1.0, 1.0], 10),  # inf - inf: the sum becomes nan, still bad
        ([-math.inf, 1.0, 1.0, 1.0], 10),
        ([1.0, 1.0, 1.0, 1.0], None),
    ],
)
def test_a_trial_diverged_at_its_first_loss_that_was_not_finite(
    values: list[float], diverged_at: int | None
) -> None:
    """Four steps ending at iteration 13 are iterations 10 to 13."""
    losses = RunningLoss(1, torch.device("cpu"))
    for value in values:
        losses.add(torch.tensor(value))
    assert losses.read(iteration=13).diverged_at == (diverged_at,)


def test_a_new_interval_starts_from_nothing_for_the_trials_that_stay() -> None:
    losses = RunningLoss(3, torch.device("cpu"))
    losses.add(torch.tensor([1.0, math.nan, 2.0]))
    losses.restart(2)
    losses.add(torch.tensor([5.0, 7.0]))
    interval = losses.read(iteration=2)
    assert interval.mean == (5.0, 7.0)
    assert interval.diverged_at == (None, None)


def test_a_loss_that_requires_grad_builds_no_graph_in_the_sum() -> None:
    weight = torch.ones((), requires_grad=True)
    losses = RunningLoss(1, torch.device("cpu"))
    losses.add(weight * 3.0)
    assert not losses.total.requires_grad


class LiveTensors:
    """The tensors alive (``gc``) just after the optimizer's step at iterations ``at``: a
    loop that keeps every step's loss until the next check holds one more each step."""

    def __init__(self, at: tuple[int, ...]) -> None:
        self.at, self.counts, self.steps = at, [], 0  # type: ignore[var-annotated]

    def after(self, step: Callable[[], object]) -> Callable[[], object]:
        def counted() -> object:
            result = step()
            self.steps += 1
            if self.steps in self.at:
                gc.collect()
                self.counts.append(sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects()))
            return result

        return counted

    def growth(self) -> int:
        return int(self.counts[-1] - self.counts[0])


STEPS = 200
"""One check at the end of one epoch of 200 examples at batch size 1."""
LONG_INTERVAL = TrialPlan(lr=0.01, batch_size=1, epochs=1, eval_every=1, seed=0)


def examples(n: int) -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return TensorData(x, (x[:, 0] > 0).long())


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))


def test_the_plain_loop_holds_no_more_tensors_as_steps_pass_between_checks() -> None:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    live = LiveTensors((20, 180))
    optimizer.step = live.after(optimizer.step)  # type: ignore[method-assign,assignment]
    loss = nn.CrossEntropyLoss()
    outcome = train_trial(
        model, optimizer, loss, examples(STEPS), examples(20), None, LONG_INTERVAL
    )
    assert outcome.points[-1].iteration == STEPS
    assert live.growth() < 10, live.counts  # 160 steps apart: not one tensor a step


def test_the_data_parallel_loop_holds_no_more_tensors_as_steps_pass_between_checks() -> None:
    """In one process (a world of one), the loop of a torchrun job."""
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    live = LiveTensors((20, 180))
    optimizer.step = live.after(optimizer.step)  # type: ignore[method-assign,assignment]
    loss = nn.CrossEntropyLoss()
    outcome = train_data_parallel(
        model, optimizer, loss, examples(STEPS), examples(20), LONG_INTERVAL
    )
    assert outcome.points[-1].iteration == STEPS
    assert live.growth() < 10, live.counts


def test_the_vectorized_loop_holds_no_more_tensors_as_steps_pass_between_checks() -> None:
    trials = [StackedTrial(LONG_INTERVAL), StackedTrial(LONG_INTERVAL)]
    data = examples(STEPS)
    run = StackedRun(
        [small_model(), small_model()], trials, nn.CrossEntropyLoss(), data, examples(20), None
    )
    live = LiveTensors((20, 180))
    run.sgd.step = live.after(run.sgd.step)  # type: ignore[method-assign,assignment]
    outcomes = run.run()
    assert [o.points[-1].iteration for o in outcomes] == [STEPS, STEPS]
    assert live.growth() < 10, live.counts
