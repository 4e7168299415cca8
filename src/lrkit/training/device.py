"""Choosing the training device, and finding the one a model is on."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from lrkit import validation as check
from lrkit.errors import LrkitValueError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cuda`` fails clearly without a GPU."""
    name = check.choice("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LrkitValueError(
            "device 'cuda' asked for, but torch sees no CUDA device",
            cli_message="--device cuda: torch sees no CUDA device here (use auto or cpu)",
        )
    return torch.device(name)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); a model with neither is refused:
    there is nothing to train."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    if first is None:
        raise LrkitValueError("the model has no parameters to train")
    return first.device
