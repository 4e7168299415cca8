"""The noise probe that runs inside another trainer's loop: the closed form of least-squares
regression through a DataLoader of dict batches, hands off the model, its .grad, its mode and
the RNGs, the smoothing, the metrics it logs and its errors."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrkit.errors import LrkitValueError
from lrkit.noise.estimators import NoiseEstimate
from lrkit.noise.probe import NoiseProbe, NoiseReading
from test_noise_scale import regression


def _dict_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> DataLoader:  # type: ignore[type-arg]
    def collate(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {"x": torch.stack([r[0] for r in rows]), "y": torch.stack([r[1] for r in rows])}

    generator = torch.Generator().manual_seed(5)
    return DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=generator,
        collate_fn=collate,
    )


@pytest.mark.parametrize(("d", "sigma", "offset"), [(20, 0.5, 1.0), (10, 1.0, 0.5)])
def test_the_probe_finds_the_closed_form_through_a_trainers_own_batches_and_loss(
    d: int, sigma: float, offset: float
) -> None:
    model, x, y, exact = regression(d, sigma, offset, n=40_000)

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return 0.5 * ((model(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean()

    probe = NoiseProbe(model, loss, _dict_loader(x, y, 16), 16, groups=96, big_factor=8)
    reading = probe.measure()
    assert reading.estimate.examples == 96 * 128
    assert reading.estimate.b_simple == pytest.approx(exact, rel=0.10)
    # One measurement: the smoothed figure is that measurement's.
    assert reading.b_simple_smoothed == pytest.approx(reading.estimate.b_simple)


def test_the_probe_leaves_weights_buffers_grads_mode_and_rngs_as_they_were() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.Tanh(), nn.Linear(8, 3)
    )
    model.eval()
    x, y = torch.randn(300, 6), torch.randint(0, 3, (300,))
    model(x).sum().backward()  # a trainer mid-accumulation holds gradients
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen_modes: list[bool] = []

    def loss(batch: list[torch.Tensor]) -> torch.Tensor:
        seen_modes.append(model.training)
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    # A loader with no generator of its own draws its order from the global RNG.
    loader = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True, drop_last=True)
    probe = NoiseProbe(model, loss, loader, 10, groups=3, big_factor=4)
    rng = torch.get_rng_state()
    for _ in range(3):  # 36 batches: the loader's 30 run out and start again
        probe.measure()
    assert torch.equal(rng, torch.get_rng_state())
    assert all(seen_modes) and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    after = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.equal(a, b) for a, b in zip(grads, after, strict=True))
    assert len(probe.readings) == 3


def test_batch_statistics_and_the_python_and_numpy_rngs_are_put_back() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
    model[1].eval()  # a frozen BatchNorm in a model that trains: each keeps its own mode
    x, y = torch.randn(64, 4) * 3 + 1, torch.randint(0, 2, (64,))
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}

    def loss(batch: list[torch.Tensor]) -> torch.Tensor:
        random.random()  # a collator drawing from Python's and numpy's RNGs
        np.random.rand()  # noqa: NPY002
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    data = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, drop_last=True)
    python_rng, numpy_rng = random.getstate(), np.random.get_state()[1].copy()  # noqa: NPY002
    NoiseProbe(model, loss, data, 8, groups=2, big_factor=2).measure()
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in buffers.items())
    assert model.training and not model[1].training
    assert random.getstate() == python_rng
    assert np.array_equal(np.random.get_state()[1], numpy_rng)  # noqa: NPY002


def test_the_smoothed_figure_is_the_ratio_of_moving_averages_by_hand() -> None:
    model = nn.Linear(3, 1)
    x, y = torch.randn(64, 3), torch.randn(64)
    probe = NoiseProbe(
        model,
        lambda b: ((model(b[0]).squeeze(-1) - b[1]) ** 2).mean(),
        DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True),
        4,
        groups=2,
        big_factor=2,
        smoothing=0.5,
    )
    first, second = probe.measure(), probe.measure()
    t = 0.5 * (0.5 * first.estimate.trace_sigma) + 0.5 * second.estimate.trace_sigma
    n = 0.5 * (0.5 * first.estimate.grad_norm_sq) + 0.5 * second.estimate.grad_norm_sq
    assert second.b_simple_smoothed == pytest.approx(t / n)


def test_the_metrics_a_trainer_logs() -> None:
    estimate = NoiseEstimate(12.0, 1.5, 2.0, 24.0, 256, "two-batch")
    assert NoiseReading(estimate, 10.0).metrics() == {
        "lrkit/b_simple": 10.0,
        "lrkit/b_simple_raw": 12.0,
        "lrkit/b_simple_stderr": 1.5,
        "lrkit/critical_batch_size": 10.0,
    }
    # An estimate of |G|^2 that is not positive gives inf: left out, not logged.
    odd = NoiseReading(NoiseEstimate(math.inf, math.nan, -1.0, 3.0, 256, "two-batch"), math.inf)
    assert odd.metrics() == {}


def test_bad_settings_and_bad_losses_are_one_line_errors() -> None:
    model = nn.Linear(2, 1)
    data = [torch.randn(4, 2)]
    with pytest.raises(LrkitValueError, match="groups"):
        NoiseProbe(model, lambda b: model(b).mean(), data, 4, groups=1)
    with pytest.raises(LrkitValueError, match="big_factor"):
        NoiseProbe(model, lambda b: model(b).mean(), data, 4, big_factor=1)
    with pytest.raises(LrkitValueError, match="scalar tensor"):
        NoiseProbe(model, lambda b: model(b), data, 4, big_factor=2, groups=2).measure()
    with pytest.raises(LrkitValueError, match="yields no batches"):
        NoiseProbe(model, lambda b: model(b).mean(), [], 4).measure()
    frozen = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(LrkitValueError, match="no trainable parameters"):
        NoiseProbe(frozen, lambda b: frozen(b).mean(), data, 4).measure()
