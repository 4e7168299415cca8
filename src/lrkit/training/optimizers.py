"""Optimizers by name, shared by the range test's and the sweep's CLI (torch loads on use,
so the CLI can check the name before importing it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lrkit import validation as check

if TYPE_CHECKING:
    from torch import nn, optim

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")


def make_optimizer(
    name: str, model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> optim.Optimizer:
    """sgd (plain, the textbook's), momentum (SGD with ``momentum``), adam or adamw."""
    from torch import optim

    name = check.choice("optimizer", name, OPTIMIZERS)
    weight_decay = check.nonnegative_float("weight_decay", weight_decay)
    params = model.parameters()
    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        beta = check.float_in("momentum", momentum, 0.0, 1.0, low_open=False, high_open=True)
        return optim.SGD(params, lr=lr, momentum=beta, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
