"""find_lr on real models and data: rounds, suggestions, accumulation and data kinds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrkit.data.mnist import bundled_sample_dir, load_mnist
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.models import build_model
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.programs import exponential_range
from lrkit.rangetest.settings import RangeTestSettings as Settings


@pytest.fixture(scope="module")
def sample() -> tuple[TensorData, TensorData]:
    train, val = load_mnist(bundled_sample_dir()).train.split(1 / 12)
    return train, val.head(500)


def test_textbook_network_turns_and_narrows(sample: tuple[TensorData, TensorData]) -> None:
    train, val = sample
    result = find_lr(build_model("mnist-mlp", 0), train, Settings(rounds=2), eval_data=val)
    first, second = result.rounds
    assert first.curve == "eval"
    assert first.record.diverged_at is not None
    assert first.turning_point is not None
    # the textbook's network keeps improving up to about lr 1, then diverges within a decade
    assert 0.3 <= first.turning_point.lr <= 3.0
    assert first.turning_point.lr < first.record.diverged_at < 20
    # round 2 repeats round 1's lead-in exactly (same weights, data order and lrs) ...
    same = 0
    for a, b in zip(first.record.points, second.record.points, strict=False):
        if a.lr != b.lr:
            break
        assert a.loss == b.loss
        same += 1
    assert same > 400
    # ... then steps finely around the turn
    fine = np.diff(second.curve_lrs[-10:])
    assert np.all(fine > 0) and np.all(fine < 0.2)
    assert result.method == "turning_point"
    assert result.suggested_lr == result.suggestions["turning_point"]
    assert result.suggested_lr is not None and 0.1 < result.suggested_lr < 2.0


def test_every_suggestion_is_reported(sample: tuple[TensorData, TensorData]) -> None:
    train, val = sample
    result = find_lr(build_model("logistic", 0), train, eval_data=val)
    assert set(result.suggestions) == {"turning_point", "valley", "steepest", "minimum"}
    for name in ("valley", "steepest", "minimum"):
        lr = result.suggestions[name]
        assert lr is not None and 1e-5 < lr < 100


def test_segment_program_from_a_string_runs_every_hold(
    sample: tuple[TensorData, TensorData],
) -> None:
    train, _ = sample
    result = find_lr(
        build_model("mnist-mlp", 0), train, Settings(program="0.01:0.05:0.01@3,0.1:0.2:0.1@2")
    )
    record = result.rounds[0].record
    assert [p.lr for p in record.points] == [0.01] * 3 + [0.02] * 3 + [0.03] * 3 + [0.04] * 3 + [
        0.05
    ] * 3 + [0.1] * 2 + [0.2] * 2
    assert [h.lr for h in record.holds] == [0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.2]
    assert result.rounds[0].curve == "mean"


def test_param_group_ratios_are_kept(sample: tuple[TensorData, TensorData]) -> None:
    train, _ = sample
    model = build_model("mnist-mlp", 0)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    seen: list[tuple[float, float]] = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):  # type: ignore[no-untyped-def,override]
            seen.append((self.param_groups[0]["lr"], self.param_groups[1]["lr"]))
            return super().step(closure)

    optimizer = Recording(
        [
            {"params": linears[0].parameters(), "lr": 0.1},
            {"params": [p for m in linears[1:] for p in m.parameters()], "lr": 0.01},
        ]
    )
    find_lr(model, train, Settings(program=exponential_range(1e-3, 1e-1, 5)), optimizer=optimizer)
    assert [a for a, _ in seen] == pytest.approx(list(exponential_range(1e-3, 1e-1, 5).lrs))
    assert all(b == pytest.approx(a / 10) for a, b in seen)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.01]


def test_gradient_accumulation_matches_the_big_batch(sample: tuple[TensorData, TensorData]) -> None:
    train, _ = sample
    program = exponential_range(1e-3, 1.0, 25)
    big = find_lr(build_model("mnist-mlp", 0), train, Settings(batch_size=16, program=program))
    accumulated = find_lr(
        build_model("mnist-mlp", 0),
        train,
        Settings(batch_size=8, program=program, accumulation_steps=2),
    )
    a = [p.loss for p in big.rounds[0].record.points]
    b = [p.loss for p in accumulated.rounds[0].record.points]
    assert b == pytest.approx(a, rel=1e-5)


def test_dataset_and_dataloader_are_accepted(sample: tuple[TensorData, TensorData]) -> None:
    train, _ = sample
    dataset = TensorDataset(train.x[:2000], train.y[:2000])
    program = exponential_range(1e-3, 1.0, 30)
    from_dataset = find_lr(
        build_model("logistic", 0), dataset, Settings(batch_size=32, program=program)
    )
    loader = DataLoader(dataset, batch_size=32, shuffle=True, generator=torch.Generator())
    from_loader = find_lr(build_model("logistic", 0), loader, Settings(program=program))
    assert len(from_dataset.rounds[0].record.points) == 30
    assert from_loader.batch_size == 32
    assert all(math.isfinite(p.loss) for p in from_loader.rounds[0].record.points)


def test_same_seed_same_result(sample: tuple[TensorData, TensorData]) -> None:
    train, val = sample
    runs = [
        find_lr(
            build_model("mnist-mlp", 3),
            train,
            Settings(seed=5, program="0.1:0.9:0.1@5"),
            eval_data=val,
        )
        for _ in range(2)
    ]
    assert runs[0].rounds[0].record == runs[1].rounds[0].record


def test_model_output_that_does_not_fit_the_labels(sample: tuple[TensorData, TensorData]) -> None:
    train, _ = sample
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 5))
    with pytest.raises(
        LrkitValueError, match=r"output of shape \(16, 5\) does not fit labels 0..9"
    ):
        find_lr(model, train)


def test_model_that_fails_on_the_inputs(sample: tuple[TensorData, TensorData]) -> None:
    train, _ = sample
    with pytest.raises(LrkitValueError, match="the model fails on a batch of inputs of shape"):
        find_lr(nn.Linear(10, 10), train)


def test_amp_without_cuda_is_refused(sample: tuple[TensorData, TensorData]) -> None:
    train, _ = sample
    with pytest.raises(LrkitValueError, match="needs a CUDA device"):
        find_lr(build_model("logistic", 0), train, Settings(amp=True))


def test_a_numpy_training_step_can_drive_the_test_through_ask_tell() -> None:
    """The documented ask/tell use: logistic regression in plain numpy."""
    from lrkit.rangetest.core import RangeTest
    from lrkit.rangetest.suggestions import turning_point

    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 5))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) > 0).astype(float)
    w = np.zeros(5)
    test = RangeTest(exponential_range(1e-3, 1e3, 120), smoothing=0.9)
    while (step := test.ask()) is not None:
        batch = rng.integers(0, 512, 64)
        p = 1 / (1 + np.exp(-(x[batch] @ w)))
        loss = -np.mean(y[batch] * np.log(p + 1e-12) + (1 - y[batch]) * np.log(1 - p + 1e-12))
        w -= step.lr * x[batch].T @ (p - y[batch]) / 64
        test.tell(loss)
    record = test.record()
    suggestion = turning_point(
        [pt.lr for pt in record.points], [pt.smoothed_loss for pt in record.points]
    )
    assert suggestion is not None and 1e-2 < suggestion < 1e3
