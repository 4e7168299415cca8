"""The width families of ``bench_laws.py`` (chosen before the benchmark first ran): one MLP in
the standard parametrization and the same MLP in muP's, both for Adam at one global lr.

muP for Adam (Yang et al. 2022, table 3, with base width ``BASE``): the hidden and output
weights' updates shrink as BASE / width and the output starts at zero, written with
multipliers (their appendix's equivalent form): a layer W = c V trains V, so an Adam step of
size lr on V moves W by c lr; c = BASE / width for the hidden and output layers, and V starts
at W's init / c (hidden: N(0, 1 / width) for W).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

BASE = 32


def sp_mlp(width: int) -> nn.Module:
    """784-width-width-10 with ReLU, PyTorch's default init: the standard parametrization."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, 10),
    )


class ScaledLinear(nn.Module):
    """y = x (c V)^T + b with V trained: Adam's step on V moves the weight by c lr."""

    def __init__(self, fan_in: int, fan_out: int, multiplier: float, weight_std: float) -> None:
        super().__init__()
        self.multiplier = multiplier
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) * (weight_std / multiplier))
        self.bias = nn.Parameter(torch.zeros(fan_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.linear(x, self.weight * self.multiplier, self.bias)


class MuMLP(nn.Module):
    """The same MLP in muP for Adam (see the module's docstring)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        shrink = BASE / width
        self.flatten = nn.Flatten()
        self.inp = nn.Linear(784, width)
        self.hid = ScaledLinear(width, width, shrink, 1 / math.sqrt(width))
        self.out = ScaledLinear(width, 10, shrink, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(self.flatten(x)))
        return self.out(torch.relu(self.hid(h)))


def mup_mlp(width: int) -> nn.Module:
    return MuMLP(width)
