"""Networks for ``bench_batch.py``'s problems that lrkit does not build in (``module:factory``
specs, called with no arguments)."""

from __future__ import annotations

from torch import nn

from suggest_problems import mlp


def relu_mlp() -> nn.Module:
    """784-128-64-10 with ReLU: wider and deeper than the textbook's 784-30-10 sigmoid net."""
    return mlp((784, 128, 64, 10))


def batchnorm_mlp() -> nn.Module:
    """784-128-128-10 with batch normalisation before each ReLU (the batch size changes what
    each step's statistics see)."""
    return mlp((784, 128, 128, 10), batch_norm=True)
