"""After a range test the model, the optimizer and every RNG are exactly as before (bitwise)."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.programs import exponential_range
from lrkit.rangetest.settings import RangeTestSettings as Settings


def make_setup() -> tuple[nn.Module, torch.optim.Optimizer, TensorData]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
    )
    optimizer = torch.optim.Adam(
        [
            {"params": model[0].parameters(), "lr": 1e-3},
            {"params": model[4].parameters(), "lr": 1e-2},
        ]
    )
    x = torch.randn(256, 8)
    data = TensorData(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())
    return model, optimizer, data


def train(model: nn.Module, optimizer: torch.optim.Optimizer, data: TensorData, steps: int) -> None:
    """Some of the user's own training, drawing on the global RNG (dropout, shuffling)."""
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(data), (32,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(data.x[index]), data.y[index]).backward()
        optimizer.step()


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, object]:
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "lrs": [g["lr"] for g in optimizer.param_groups],
        "modes": [m.training for m in model.modules()],
        "torch": torch.get_rng_state().clone(),
        "numpy": np.random.get_state()[1].copy(),  # noqa: NPY002 (the global state)
        "python": random.getstate(),
    }


def assert_identical(a: dict[str, object], b: dict[str, object]) -> None:
    model_a, model_b = a["model"], b["model"]
    assert isinstance(model_a, dict) and isinstance(model_b, dict)
    assert model_a.keys() == model_b.keys()
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    state_a, state_b = a["optimizer"], b["optimizer"]
    assert isinstance(state_a, dict) and isinstance(state_b, dict)
    assert state_a["param_groups"] == state_b["param_groups"]
    assert state_a["state"].keys() == state_b["state"].keys()
    for key in state_a["state"]:
        for name, value in state_a["state"][key].items():
            assert torch.equal(value, state_b["state"][key][name])
    assert a["lrs"] == b["lrs"]
    assert a["modes"] == b["modes"]
    assert torch.equal(a["torch"], b["torch"])  # type: ignore[arg-type]
    assert np.array_equal(a["numpy"], b["numpy"])  # type: ignore[arg-type]
    assert a["python"] == b["python"]


def test_range_test_restores_everything_bitwise() -> None:
    model, optimizer, data = make_setup()
    train(model, optimizer, data, 5)  # optimizer now has state; BN has running stats
    model.eval()  # a mode the test must give back
    random.random()
    before = snapshot(model, optimizer)
    result = find_lr(
        model,
        data,
        Settings(batch_size=32, program=exponential_range(1e-5, 10.0, 60), rounds=2),
        optimizer=optimizer,
    )
    assert len(result.rounds) >= 1
    assert_identical(before, snapshot(model, optimizer))


def test_training_after_the_test_is_the_same_as_without_it() -> None:
    model_a, optimizer_a, data = make_setup()
    train(model_a, optimizer_a, data, 5)
    torch.manual_seed(99)
    train(model_a, optimizer_a, data, 20)

    model_b, optimizer_b, _ = make_setup()
    train(model_b, optimizer_b, data, 5)
    torch.manual_seed(99)
    find_lr(
        model_b,
        data,
        Settings(batch_size=32, program=exponential_range(1e-4, 1.0, 30)),
        optimizer=optimizer_b,
    )
    train(model_b, optimizer_b, data, 20)

    assert all(
        torch.equal(p, q)
        for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True)
    )


def test_state_is_restored_even_when_the_test_fails() -> None:
    model, optimizer, data = make_setup()
    before = snapshot(model, optimizer)

    def exploding_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if exploding_loss.calls == 5:  # type: ignore[attr-defined]
            raise RuntimeError("boom")
        exploding_loss.calls += 1  # type: ignore[attr-defined]
        return nn.functional.cross_entropy(output, target)

    exploding_loss.calls = 0  # type: ignore[attr-defined]
    try:
        find_lr(model, data, Settings(batch_size=32), optimizer=optimizer, loss_fn=exploding_loss)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the loss should have raised")
    assert_identical(before, snapshot(model, optimizer))


def test_a_users_dataloader_shuffles_as_if_the_test_never_ran() -> None:
    model, optimizer, data = make_setup()
    dataset = torch.utils.data.TensorDataset(data.x, data.y)

    def loader() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
        generator = torch.Generator().manual_seed(7)
        return torch.utils.data.DataLoader(
            dataset, batch_size=32, shuffle=True, generator=generator
        )

    untouched, tested = loader(), loader()
    next(iter(untouched)), next(iter(tested))  # both have drawn one epoch's order
    settings = Settings(program=exponential_range(1e-4, 1.0, 20), rounds=2)
    find_lr(model, tested, settings, optimizer=optimizer)
    assert torch.equal(next(iter(untouched))[1], next(iter(tested))[1])
