"""The width families of ``bench_laws.py`` (chosen before the benchmark first ran): one MLP in
the standard parametrization and the same MLP in muP's, both for Adam at one global lr.

muP for Adam (Yang et al. 2022, table 3, with base width ``BASE``): the hidden and output
weights' updates shrink as BASE / width and the output starts at zero, written with
multipliers (their appendix's equivalent form): a layer W = c V trains V, so an Adam step of
size lr on V moves W by c lr; c = BASE / width for the hidden and output layers, and V starts
at W's init / c (hidden: N(0, 1 / width) for W).

Checked against table 3 (2026-12-03, after the second run's muP drift, nothing changed):
input weights and all biases train at Adam lr eta with init variance ~ 1 / fan_in (PyTorch's
uniform default gives 1 / (3 fan_in), a width-free factor); hidden weights at eta / fan_in with
variance 1 / fan_in; output weights at eta / fan_in, started at zero (the paper's recommended
zero init for the readout). So the drift is not a parametrization error found in this code.

Held-out families (chosen 2026-12-03 before any of them ran, after the first two had been
run twice and the repeat band had been designed on them; never used to tune anything):
``sp_deep_mlp`` and ``mup_deep_mlp``, the same construction with three hidden layers
(784-w-w-w-10, ReLU), so two hidden-to-hidden layers scale in muP. Verdicts as for the first
pair, fixed in advance: the held-out width 512 predicted within sqrt 2 or the interval said
wider than 2x; the exponent interval below 0 for ``sp-deep-adam``, holding 0 for
``mup-deep-adam``; the coordinate check not flat / flat.
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


def sp_deep_mlp(width: int) -> nn.Module:
    """784-width-width-width-10 with ReLU, PyTorch's default init (held out: see above)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, width),
        nn.ReLU(),
        nn.Linear(width, width),
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
    """The MLP in muP for Adam with ``hidden`` hidden layers (see the module's docstring)."""

    def __init__(self, width: int, hidden: int = 2) -> None:
        super().__init__()
        shrink = BASE / width
        self.flatten = nn.Flatten()
        self.inp = nn.Linear(784, width)
        self.hid = nn.ModuleList(
            ScaledLinear(width, width, shrink, 1 / math.sqrt(width)) for _ in range(hidden - 1)
        )
        self.out = ScaledLinear(width, 10, shrink, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(self.flatten(x)))
        for layer in self.hid:
            h = torch.relu(layer(h))
        return self.out(h)


def mup_mlp(width: int) -> nn.Module:
    """784-width-width-10 in muP."""
    return MuMLP(width)


def mup_deep_mlp(width: int) -> nn.Module:
    """784-width-width-width-10 in muP (held out: see above)."""
    return MuMLP(width, hidden=3)
