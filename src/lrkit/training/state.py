"""Capturing and restoring everything a range test touches, so the user's training cannot
tell that it ran: parameters and buffers, optimizer state, train/eval modes, the RNG states
of Python, numpy, torch's CPU generator and every CUDA device's, and a ``DataLoader``'s own
generator and ``DistributedSampler`` epoch (the test reseeds them for every round).

:func:`preserved` names the whole procedure, as Lightning's tuner does (dump, reset,
restore in ``finally``): it captures on entry, hands back the snapshot so that every round
can start from it (:func:`restore`), and restores on exit, also when the test raises.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler


@dataclass(frozen=True)
class LoaderState:
    """A ``DataLoader``'s generator state and its ``DistributedSampler``'s epoch."""

    generator: torch.Generator | None = None
    generator_state: torch.Tensor | None = None
    sampler: DistributedSampler | None = None  # type: ignore[type-arg]
    sampler_epoch: int | None = None


@dataclass(frozen=True)
class TrainingState:
    """A snapshot of a model, its optimizer, the global RNGs and the data's own RNG."""

    model: dict[str, torch.Tensor]
    modes: tuple[bool, ...]
    optimizer: dict[str, Any]
    python_rng: object
    numpy_rng: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: tuple[torch.Tensor, ...]
    loader: LoaderState = LoaderState()


def capture(
    model: nn.Module, optimizer: torch.optim.Optimizer, data: object = None
) -> TrainingState:
    """Snapshot ``model``, ``optimizer``, the global RNG states and, when ``data`` is a
    ``DataLoader``, its generator and sampler epoch."""
    return TrainingState(
        model={k: v.detach().clone() for k, v in model.state_dict().items()},
        modes=tuple(m.training for m in model.modules()),
        optimizer=copy.deepcopy(optimizer.state_dict()),
        python_rng=random.getstate(),
        numpy_rng=np.random.get_state(legacy=False),  # noqa: NPY002 (the global state users' code draws from)
        torch_rng=torch.get_rng_state(),
        cuda_rng=tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else (),  # type: ignore[no-untyped-call]
        loader=_loader_state(data),
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
    loader = state.loader
    if loader.generator is not None and loader.generator_state is not None:
        loader.generator.set_state(loader.generator_state)
    if loader.sampler is not None and loader.sampler_epoch is not None:
        loader.sampler.set_epoch(loader.sampler_epoch)


@contextmanager
def preserved(
    model: nn.Module, optimizer: torch.optim.Optimizer, data: object = None
) -> Iterator[TrainingState]:
    """Capture on entry, restore on exit (also on an exception); the snapshot is yielded so
    that work inside can go back to it (``restore(snapshot, model, optimizer)``)."""
    snapshot = capture(model, optimizer, data)
    try:
        yield snapshot
    finally:
        restore(snapshot, model, optimizer)


def _loader_state(data: object) -> LoaderState:
    if not isinstance(data, DataLoader):
        return LoaderState()
    generator = data.generator if isinstance(data.generator, torch.Generator) else None
    sampler = data.sampler if isinstance(data.sampler, DistributedSampler) else None
    return LoaderState(
        generator,
        generator.get_state() if generator is not None else None,
        sampler,
        sampler.epoch if sampler is not None else None,
    )
