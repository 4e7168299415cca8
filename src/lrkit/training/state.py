"""Capturing and restoring everything a range test touches, so the user's training cannot
tell that it ran: parameters and buffers, optimizer state, train/eval modes, and the RNG
states of Python, numpy, torch's CPU generator and every CUDA device's."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TrainingState:
    """A snapshot of a model, its optimizer and the global RNGs (tensors cloned)."""

    model: dict[str, torch.Tensor]
    modes: tuple[bool, ...]
    optimizer: dict[str, Any]
    python_rng: object
    numpy_rng: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: tuple[torch.Tensor, ...]


def capture(model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainingState:
    """Snapshot ``model``, ``optimizer`` and the global RNG states."""
    return TrainingState(
        model={k: v.detach().clone() for k, v in model.state_dict().items()},
        modes=tuple(m.training for m in model.modules()),
        optimizer=copy.deepcopy(optimizer.state_dict()),
        python_rng=random.getstate(),
        numpy_rng=np.random.get_state(legacy=False),  # noqa: NPY002 (the global state users' code draws from)
        torch_rng=torch.get_rng_state(),
        cuda_rng=tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else (),  # type: ignore[no-untyped-call]
    )


def restore(state: TrainingState, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Put back exactly what :func:`capture` saw (in place: the same Parameter objects)."""
    with torch.no_grad():
        current = model.state_dict()
        for key, saved in state.model.items():
            current[key].copy_(saved)
    for module, mode in zip(model.modules(), state.modes, strict=True):
        module.training = mode
    optimizer.load_state_dict(copy.deepcopy(state.optimizer))
    random.setstate(state.python_rng)  # type: ignore[arg-type]
    np.random.set_state(state.numpy_rng)  # noqa: NPY002 (see capture)
    torch.set_rng_state(state.torch_rng)
    if state.cuda_rng:
        torch.cuda.set_rng_state_all(list(state.cuda_rng))
