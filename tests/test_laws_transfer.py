"""The coordinate check (``lrkit.laws.transfer``): the standard parametrization with Adam
grows with width, a muP-style one (Yang et al. 2022, table 3) stays flat; bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.laws.transfer import coordinate_check, slope_interval

WIDTHS = (64, 128, 256, 512)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 20, generator=g)
    return x, (x[:, :5].sum(1) > 0).long()


def standard(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(20, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2)
    )


class MuMLP(nn.Module):
    """muP for Adam: the readout starts at zero; hidden and readout lrs fall as 1 / width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.inp, self.hid, self.out = (
            nn.Linear(20, width),
            nn.Linear(width, width),
            nn.Linear(width, 2),
        )
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hid(torch.relu(self.inp(x)))))


def mu_adam(model: nn.Module) -> torch.optim.Optimizer:
    assert isinstance(model, MuMLP)
    shrink = model.width / WIDTHS[0]
    return torch.optim.Adam(
        [
            {"params": model.inp.parameters(), "lr": 1e-2},
            {"params": model.hid.parameters(), "lr": 1e-2 / shrink},
            {"params": model.out.parameters(), "lr": 1e-2 / shrink},
        ]
    )


def test_the_standard_parametrization_grows_and_mup_stays_flat() -> None:
    x, y = data()
    loss = nn.CrossEntropyLoss()
    sp = coordinate_check(
        standard,
        lambda m: torch.optim.Adam(m.parameters(), lr=1e-2),
        WIDTHS,
        TensorData(x, y),
        loss,
        seeds=(0, 1),
    )
    verdicts = {layer.layer: layer.verdict for layer in sp.layers}
    # The hidden layer's activations grow with width (the readout's too, more noisily).
    assert verdicts["2"] == "grows" and not sp.flat, verdicts
    hidden = next(layer for layer in sp.layers if layer.layer == "2")
    assert hidden.sizes[-1][1] > 3 * hidden.sizes[0][1]  # 8x the width, >3x the activations
    mu = coordinate_check(MuMLP, mu_adam, WIDTHS, TensorData(x, y), loss, seeds=(0, 1))
    assert mu.flat, [(layer.layer, layer.slope, layer.interval) for layer in mu.layers]
    assert set(mu.curves) == {"inp", "hid", "out"} and len(mu.curves["out"][64]) == 5
    assert mu.to_json()["flat"] is True


def test_the_slope_and_its_interval_by_hand() -> None:
    slope, (low, high) = slope_interval([0.0, 1.0, 2.0, 3.0], [1.0, 2.1, 2.9, 4.0])
    # Sxx = 5, Sxy = 4.9: slope 0.98; residuals -0.03, 0.09, -0.09, 0.03 (SSE 0.018), df 2
    half = 2.920 * (0.018 / 2 / 5) ** 0.5
    assert slope == pytest.approx(0.98)
    assert (low, high) == pytest.approx((0.98 - half, 0.98 + half))


def test_bad_input_is_refused() -> None:
    x, y = data()
    loss = nn.CrossEntropyLoss()
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=1e-2)  # noqa: E731
    with pytest.raises(LrkitValueError, match="at least 3 widths"):
        coordinate_check(standard, adam, (64, 64, 128), TensorData(x, y), loss)

    def growing(width: int) -> nn.Module:
        extra = [nn.Linear(width, width)] if width > 100 else []
        return nn.Sequential(nn.Linear(20, width), *extra, nn.Linear(width, 2))

    with pytest.raises(LrkitValueError, match="layers differ between widths"):
        coordinate_check(growing, adam, WIDTHS, TensorData(x, y), loss, seeds=(0,))
