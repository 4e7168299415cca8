"""The largest batch that fits: probed on a GPU, estimated from memory on a CPU.

- **Probe** (CUDA by default; Lightning's ``scale_batch_size``, its "power" then "binsearch"
  modes): a forward, backward and optimizer step of the real model on a batch of B real
  examples, B doubling from ``start`` until the first out-of-memory error (nothing larger is
  tried after it), then a binary search between the last size that fitted and the first that
  did not. The model, the optimizer and every RNG are restored bitwise afterwards
  (``training.state.preserved``), as after a range test.
- **Memory** (a CPU by default, where running out of memory means swapping or the kernel's
  OOM killer, not an exception): the bytes the autograd graph keeps for the backward pass
  (``torch.autograd.graph.saved_tensors_hooks``) are measured at two batch sizes; their
  difference over the difference of sizes is the activations one example keeps. The peak of
  a step is taken as twice that (the kept activations and their gradients) plus the example
  itself, per example, on top of the parameters, their gradients and the optimizer's state;
  the ceiling is (memory - fixed) / per example, with ``memory`` a safe share of what the
  machine has available (``SAFE_SHARE``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lrkit.batchsize.result import Ceiling
from lrkit.batchsize.settings import CeilingSettings
from lrkit.data.features import Features, Inputs
from lrkit.data.tensors import TensorData
from lrkit.training.evaluate import LossFn
from lrkit.training.outputs import batch_loss
from lrkit.training.state import preserved, restore
from lrkit.training.step import train_step

SAFE_SHARE = 0.5
"""The share of the available memory a CPU ceiling assumes training may use."""
STATE_TENSORS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
"""Tensors of the parameters' size each optimizer keeps (momentum buffer; Adam's moments)."""


@dataclass(frozen=True)
class CeilingSearch:
    """Where the probe ran: every size tried, in order, and whether it fitted."""

    largest: int
    """The largest size that fitted (0: not even the first)."""
    tried: tuple[tuple[int, bool], ...]


def search_ceiling(fits: Callable[[int], bool], start: int, limit: int) -> CeilingSearch:
    """Double from ``start`` while ``fits`` (never past ``limit``), then bisect between the
    last size that fitted and the first that did not; nothing larger than a failure is
    tried."""
    if start < 1 or limit < start:
        raise ValueError(f"need 1 <= start <= limit, got start {start}, limit {limit}")
    tried: list[tuple[int, bool]] = []

    def attempt(size: int) -> bool:
        ok = fits(size)
        tried.append((size, ok))
        return ok

    size, good, bad = start, 0, None
    while True:
        if not attempt(size):
            bad = size
            break
        good = size
        if size == limit:
            break
        size = min(2 * size, limit)
    if bad is not None and good > 0:
        while bad - good > 1:
            middle = (good + bad) // 2
            if attempt(middle):
                good = middle
            else:
                bad = middle
    return CeilingSearch(good, tuple(tried))


def is_out_of_memory(error: BaseException) -> bool:
    """torch's out-of-memory error, or a RuntimeError that says so (other backends)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def available_memory() -> int:
    """Bytes of memory available now (Linux's MemAvailable, else the free pages)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _batch(train: TensorData, size: int) -> tuple[Inputs, torch.Tensor]:
    """``size`` real examples (the training set repeated where it has fewer)."""
    index = torch.arange(size, device=train.x.device) % len(train)
    return train.x[index], train.y[index]


def probe_ceiling(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train: TensorData,
    *,
    start: int = 8,
    limit: int | None = None,
) -> Ceiling:
    """Probe the largest batch ``model`` can take a training step on (see the module's
    docstring); the model, ``optimizer`` and RNGs are as they were afterwards."""
    most = limit if limit is not None else len(train)
    cuda = train.x.device.type == "cuda"

    def fits(size: int) -> bool:
        try:
            x, y = _batch(train, size)
            train_step(model, optimizer, loss_fn, x, y)
            return True
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            return False
        finally:
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.empty_cache()

    with preserved(model, optimizer) as snapshot:

        def fits_from_snapshot(size: int) -> bool:
            restore(snapshot, model, optimizer)
            return fits(size)

        found = search_ceiling(fits_from_snapshot, min(start, most), most)
    return Ceiling(found.largest, "probe", most, found.tried)


def saved_bytes(model: nn.Module, loss_fn: LossFn, x: Inputs, y: torch.Tensor) -> int:
    """Bytes of the tensors a forward pass keeps for backward (each storage once)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = batch_loss(model, loss_fn, x, y)
    del loss
    return total


def input_bytes(x: Inputs) -> int:
    """Bytes of the inputs ``x`` (every named tensor of them)."""
    tensors = x.tensors.values() if isinstance(x, Features) else (x,)
    return sum(t.element_size() * t.numel() for t in tensors)


def estimate_ceiling(
    model: nn.Module,
    loss_fn: LossFn,
    train: TensorData,
    optimizer: str,
    *,
    memory: int | None = None,
    limit: int | None = None,
    sizes: tuple[int, int] = (8, 64),
) -> Ceiling:
    """The largest batch the memory model allows (see the module's docstring). ``memory``:
    the bytes training may use (default ``SAFE_SHARE`` of the available memory)."""
    most = limit if limit is not None else len(train)
    budget = memory if memory is not None else int(SAFE_SHARE * available_memory())
    small, big = (min(s, max(most, 2)) for s in sizes)
    if big <= small:
        small, big = 1, max(2, small)
    was_training = model.training
    model.train()
    try:
        kept = [saved_bytes(model, loss_fn, *_batch(train, s)) for s in (small, big)]
    finally:
        model.train(was_training)
    activations = max(kept[1] - kept[0], 0) / (big - small)
    per_example = 2.0 * activations + input_bytes(train.x[:1])
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    # What the graph keeps whatever the batch (weights saved for backward, say) on top of the
    # parameters, their gradients and the optimizer's state.
    constant = max(kept[0] - activations * small, 0.0)
    fixed = params * (2 + STATE_TENSORS.get(optimizer, 2)) + constant
    room = budget - fixed
    size = 0 if room <= 0 else int(min(most, math.floor(room / per_example)))
    return Ceiling(
        size,
        "memory",
        most,
        memory_bytes=budget,
        fixed_bytes=int(fixed),
        example_bytes=per_example,
    )


def find_ceiling(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    optimizer_name: str,
    loss_fn: LossFn,
    train: TensorData,
    settings: CeilingSettings | None = None,
) -> Ceiling:
    """The ceiling by ``settings.method`` (auto: probe on CUDA, memory elsewhere);
    ``optimizer_name`` says how much state the memory model counts (``STATE_TENSORS``)."""
    how = settings or CeilingSettings()
    if how.method == "probe" or (how.method == "auto" and train.x.device.type == "cuda"):
        return probe_ceiling(model, optimizer, loss_fn, train, start=how.start, limit=how.limit)
    return estimate_ceiling(
        model, loss_fn, train, optimizer_name, memory=how.memory, limit=how.limit
    )
