"""The sweep's training loop: checks, partial batches, divergence, schedules, and agreement
with a hand-written loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.schedules import batch_size_steps, step
from lrkit.training.evaluate import evaluate
from lrkit.training.loop import TrialPlan, train_trial


def tiny_data(n: int = 240, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorData(x, (x[:, 0] + x[:, 1] > 0).long())


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))


def run(
    plan: TrialPlan,
    data: TensorData | None = None,
    loss_fn: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    model: nn.Module | None = None,
):  # type: ignore[no-untyped-def]
    data = data or tiny_data()
    model = model or tiny_model()
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=plan.lr)
    return train_trial(
        model,
        optimizer,
        loss_fn or nn.CrossEntropyLoss(),
        data,
        tiny_data(60, 1),
        tiny_data(60, 2),
        plan,
    )


def test_a_check_every_half_epoch_with_the_initial_point() -> None:
    outcome = run(TrialPlan(lr=0.1, batch_size=16, epochs=2, eval_every=0.5, seed=0))
    # 240 examples at 16: 15 batches an epoch; half an epoch is reached after batch 8
    assert [p.iteration for p in outcome.points] == [0, 8, 15, 23, 30]
    assert [round(p.epoch, 3) for p in outcome.points] == [0.0, 0.533, 1.0, 1.533, 2.0]
    assert math.isnan(outcome.points[0].train_loss)
    assert all(math.isfinite(p.train_loss) for p in outcome.points[1:])
    assert outcome.status == "done"
    assert outcome.test_accuracy is not None


def test_the_last_partial_batch_is_used() -> None:
    outcome = run(
        TrialPlan(lr=0.1, batch_size=16, epochs=1, eval_every=1, seed=0), data=tiny_data(250)
    )
    assert outcome.points[-1].iteration == 16  # 15 full batches and one of 10


def test_matches_a_hand_written_loop() -> None:
    data = tiny_data()
    plan = TrialPlan(lr=0.3, batch_size=32, epochs=3, eval_every=1, seed=5)
    model = tiny_model(1)
    run(plan, data=data, model=model)

    reference = tiny_model(1)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.3)
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), 32):
            index = order[start : start + 32]
            optimizer.zero_grad()
            nn.functional.cross_entropy(reference(data.x[index]), data.y[index]).backward()
            optimizer.step()
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True)
    )


def test_divergence_is_reported_at_the_iteration_it_happened() -> None:
    calls = {"n": 0}

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = nn.functional.cross_entropy(output, target)
        # the checks (eval passes) also call the loss: count training calls only
        return loss * math.inf if calls["n"] == 20 else loss

    outcome = run(TrialPlan(lr=0.1, batch_size=16, epochs=3, eval_every=1, seed=0), loss_fn=loss_fn)  # type: ignore[arg-type]
    assert outcome.status == "diverged"
    # one eval call at iteration 0, then training calls 2..16 are iterations 1..15, the eval
    # at the end of epoch 1 is call 17, so call 20 is training iteration 18
    assert outcome.diverged_iteration == 18
    assert outcome.test_accuracy is None
    assert outcome.points[-1].iteration == 15


def test_schedule_sets_the_lr_every_iteration() -> None:
    seen: list[float] = []
    model = tiny_model()

    class Recording(torch.optim.SGD):
        def step(self, closure=None):  # type: ignore[no-untyped-def,override]
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    plan = TrialPlan(
        lr=1.0, batch_size=60, epochs=2, eval_every=1, seed=0, schedule=step(1.0, 0.5, 3)
    )
    run(plan, model=model, optimizer=Recording(model.parameters(), lr=1.0))
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_batch_size_schedule_grows_the_batch_by_epoch() -> None:
    sizes: list[int] = []
    model = tiny_model()

    class Recording(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                sizes.append(x.shape[0])
            return self.inner(x)

    wrapped = Recording()
    plan = TrialPlan(
        lr=0.1,
        batch_size=60,
        epochs=3,
        eval_every=1,
        seed=0,
        batch_size_schedule=batch_size_steps(60, 2, [1, 2]),
    )
    run(plan, model=wrapped, optimizer=torch.optim.SGD(wrapped.parameters(), lr=0.1))
    assert sizes == [60] * 4 + [120] * 2 + [240]


def test_evaluate_is_one_pass_in_eval_mode() -> None:
    model = nn.Sequential(nn.Linear(6, 2), nn.Dropout(0.9))
    model.train()
    data = tiny_data(60)
    loss, accuracy = evaluate(model, nn.CrossEntropyLoss(), data)
    assert model.training
    assert loss == pytest.approx(evaluate(model, nn.CrossEntropyLoss(), data)[0])
    assert 0.0 <= accuracy <= 1.0


def test_evaluate_in_chunks_equals_one_pass() -> None:
    model = tiny_model()
    data = tiny_data(250)
    whole = evaluate(model, nn.CrossEntropyLoss(), data)
    chunked = evaluate(model, nn.CrossEntropyLoss(), data, chunk=7)
    assert chunked[0] == pytest.approx(whole[0], rel=1e-6)
    assert chunked[1] == whole[1]


def test_evaluate_has_no_accuracy_for_a_regression() -> None:
    data = TensorData(torch.randn(20, 6), torch.randn(20, 1))
    loss, accuracy = evaluate(nn.Linear(6, 1), nn.MSELoss(), data)
    assert math.isfinite(loss) and math.isnan(accuracy)
