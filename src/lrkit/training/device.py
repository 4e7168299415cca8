"""Choosing the training device."""

from __future__ import annotations

import torch

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
