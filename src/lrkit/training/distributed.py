"""Data-parallel runs: ``torch.distributed`` with a ``DistributedDataParallel`` (DDP) model.

The range test and the noise scale run inside a ``torchrun`` job as they run in one process
fed the same global batches: every rank reads the same global batch (the one a single process
would read) and trains on its rows [r b, (r + 1) b); DDP's all-reduce averages the ranks'
gradients into the global batch's; the scalars that decide anything (the loss the range test
smooths and stops on, evaluation losses) are gathered and summed in rank order, so every rank
holds the same value bit for bit and takes the same decisions.

The noise scale comes from a DDP communication hook (:func:`noise_hook`): before the
all-reduce each bucket holds this rank's own gradient over B_small = b examples, after it the
mean gradient over B_big = world x b; their squared norms are the two batch sizes of
McCandlish et al. (2018, appendix A.1), with no extra forward or backward pass.

This module does not use ``from __future__ import annotations``: DDP checks the hook's
annotations against the real classes (``dist.GradBucket``, ``Future[Tensor]``).
"""

import gc
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lrkit.data.features import Inputs
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.training.evaluate import LossFn, evaluate

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """True inside an initialized ``torch.distributed`` process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0, or not distributed: the process that prints and writes files."""
    return rank() == 0


def is_ddp(model: nn.Module) -> bool:
    """True for a ``DistributedDataParallel`` model (in an initialized process group)."""
    return isinstance(model, DistributedDataParallel) and is_distributed()


def unwrap(model: nn.Module) -> nn.Module:
    """The module DDP wraps (the model itself otherwise): evaluating it runs no collective."""
    if isinstance(model, DistributedDataParallel):
        inner = model.module
        assert isinstance(inner, nn.Module)
        return inner
    return model


def launched_by_torchrun() -> bool:
    """True when the environment is a ``torchrun`` worker's (RANK, WORLD_SIZE, ... set)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def _collective_device() -> torch.device:
    """Where a collective's tensors live: the current CUDA device under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_floats(values: Sequence[float]) -> list[tuple[float, ...]]:
    """Every rank's ``values`` (the same count on each), in rank order; the same on every rank."""
    if not is_distributed():
        return [tuple(float(v) for v in values)]
    local = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    return [tuple(float(v) for v in part.tolist()) for part in parts]


def _total(values: Sequence[float]) -> float:
    """An exact sum where it exists (``fsum``), else the plain sum (inf or nan)."""
    if all(math.isfinite(v) for v in values):
        return math.fsum(values)
    return sum(values, 0.0)


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over the ranks, the same float on every rank (``value`` itself
    when not distributed). Every rank must call it (a collective)."""
    if not is_distributed():
        return float(value)
    return _total([part[0] for part in gather_floats([value])]) / world_size()


def mean_tensor_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The elementwise mean of ``values`` over the ranks (all-reduced; a collective), on
    ``values``'s device; ``values`` itself when not distributed."""
    if not is_distributed():
        return values
    reduced = values.to(_collective_device(), copy=True)
    dist.all_reduce(reduced)
    return (reduced / world_size()).to(values.device)


def min_tensor_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The elementwise minimum of ``values`` over the ranks (all-reduced; a collective), on
    ``values``'s device; ``values`` itself when not distributed."""
    if not is_distributed():
        return values
    reduced = values.to(_collective_device(), copy=True)
    dist.all_reduce(reduced, op=dist.ReduceOp.MIN)
    return reduced.to(values.device)


class Shard(NamedTuple):
    """This rank's rows of a global batch, and the weight of its mean loss.

    The weight, (rows here) x world / (rows in the global batch), is 1 when the global batch
    divides evenly; otherwise it makes DDP's mean of the ranks' gradients the gradient of the
    global batch's mean loss, and the mean over ranks of the weighted losses its mean loss."""

    x: Inputs
    y: torch.Tensor
    weight: float


def shard(x: Inputs, y: torch.Tensor, part: int, parts: int) -> Shard:
    """Rows of the global batch ``(x, y)`` for rank ``part`` of ``parts``: as equal as can be,
    the first ones one row longer (``torch.tensor_split``'s division). A rank left without a
    row (a global batch smaller than the world) trains on row 0 with weight 0, as every rank
    must take part in the all-reduce."""
    rows = int(x.shape[0])
    base, extra = divmod(rows, parts)
    size = base + (1 if part < extra else 0)
    start = part * base + min(part, extra)
    if size == 0:
        return Shard(x[:1], y[:1], 0.0)
    weight = 1.0 if size * parts == rows else size * parts / rows
    return Shard(x[start : start + size], y[start : start + size], weight)


def shard_batches(batches: Iterator[tuple[Inputs, torch.Tensor]]) -> Iterator[Shard]:
    """This rank's shard of each global batch of ``batches``."""
    part, parts = rank(), world_size()
    for x, y in batches:
        yield shard(x, y, part, parts)


def evaluate_over_ranks(
    model: nn.Module, loss_fn: LossFn, data: TensorData, chunk: int | None = None
) -> tuple[float, float]:
    """(mean loss, accuracy) over all of ``data``, each rank evaluating its share (``model``
    is the unwrapped module, the same weights on every rank); the same on every rank. A set
    smaller than the world is evaluated whole by every rank."""
    if not is_distributed():
        return evaluate(model, loss_fn, data, chunk)
    parts = world_size()
    if len(data) < parts:
        loss, accuracy = evaluate(model, loss_fn, data, chunk)
        return mean_over_ranks(loss), mean_over_ranks(accuracy)
    mine = shard(data.x, data.y, rank(), parts)
    rows = int(mine.x.shape[0])
    loss, accuracy = evaluate(model, loss_fn, TensorData(mine.x, mine.y), chunk)
    gathered = gather_floats([loss * rows, accuracy * rows])
    n = len(data)
    return _total([g[0] for g in gathered]) / n, _total([g[1] for g in gathered]) / n


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DDP when distributed (on ``device``), else ``model`` itself."""
    if not is_distributed():
        return model
    if device.type != "cuda":
        return DistributedDataParallel(model)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return DistributedDataParallel(model, device_ids=[index])


@contextmanager
def torchrun_group(device: torch.device, timeout_s: float = 1800.0) -> Iterator[torch.device]:
    """Inside a ``torchrun`` job: join its process group (NCCL on CUDA, with this rank's
    device ``cuda:LOCAL_RANK``; gloo on the CPU), yield the rank's device and leave the group
    after. Outside one, or when a group already exists (the caller's own), yield ``device``.

    Let the DDP models made inside go out of scope within the block: they are collected
    before the group is destroyed. (A DDP model that outlives its group, kept by a reference
    cycle until the interpreter shuts down, now and then aborts the process at exit with
    "terminate called without an active exception", after all the work is done.)"""
    if not launched_by_torchrun() or is_distributed():
        yield device
        return
    if not dist.is_available():
        raise LrkitValueError("launched by torchrun, but this torch has no torch.distributed")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    try:
        yield device
    finally:
        gc.collect()  # DDP models hold the group (a reducer and its hook), often in cycles
        dist.destroy_process_group()


class NoiseHook:
    """The state of :func:`noise_hook`: per optimizer step, this rank's |g_small|^2 (its own
    gradient, before the all-reduce) and |G_big|^2 (the all-reduced mean), summed over DDP's
    buckets, kept on the device until :meth:`collect`.

    Call :meth:`end_step` after each backward (with a zeroed ``.grad`` before it: a bucket
    holds whatever the gradients accumulated) and :meth:`collect` on every rank at a check;
    once done, set ``active`` False (a DDP model keeps its hook: it then only averages).
    """

    def __init__(self) -> None:
        self.active = True
        """False: the hook only averages (DDP keeps a hook for the model's lifetime)."""
        self._local: list[torch.Tensor] = []
        self._mean: list[torch.Tensor] = []
        self._small: list[torch.Tensor] = []
        self._big: list[torch.Tensor] = []
        self._sizes: list[int] = []

    def attach(self, model: nn.Module) -> None:
        """Register the hook on the DDP ``model`` (once, before its first backward)."""
        if not isinstance(model, DistributedDataParallel):
            raise LrkitValueError("the noise hook needs a DistributedDataParallel model")
        model.register_comm_hook(self, noise_hook)

    def record_local(self, squared_norm: torch.Tensor) -> None:
        """A bucket's squared norm before the all-reduce (this rank's gradient)."""
        self._local.append(squared_norm)

    def record_mean(self, squared_norm: torch.Tensor) -> None:
        """A bucket's squared norm after the all-reduce (the mean over ranks)."""
        self._mean.append(squared_norm)

    def end_step(self, small_batch: int | None) -> None:
        """Close the step whose backward just ran: keep it with B_small = ``small_batch``
        (every rank's rows; B_big = world x that), or drop it (None: the ranks' shards
        differed, as the last, partial batch of an epoch may)."""
        local, mean = self._local, self._mean
        self._local, self._mean = [], []
        if small_batch is None or not local:
            return
        self._small.append(torch.stack(local).sum())
        self._big.append(torch.stack(mean).sum())
        self._sizes.append(small_batch)

    def collect(self) -> tuple[list[float], list[float], list[int]]:
        """(mean over ranks of |g_small|^2, |G_big|^2, B_small), one entry per kept step
        since the last collect; a collective (one all-reduce), on every rank."""
        small, big, sizes = self._small, self._big, self._sizes
        self._small, self._big, self._sizes = [], [], []
        if not small:
            return [], [], []
        local = mean_tensor_over_ranks(torch.stack(small))
        return local.tolist(), torch.stack(big).tolist(), sizes


def noise_hook(
    state: NoiseHook,
    bucket: dist.GradBucket,  # type: ignore[name-defined]  # defined where dist is available
) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: the default averaging all-reduce, recording the bucket's
    squared norm before it (this rank's gradient) and after it (the mean over ranks)."""
    buffer = bucket.buffer()
    active = state.active
    if active:
        state.record_local(torch.linalg.vector_norm(buffer, dtype=torch.float64).square())
    buffer.div_(world_size())
    work = dist.all_reduce(buffer, async_op=True)
    assert work is not None
    if not active:
        plain: torch.futures.Future[list[torch.Tensor]] = work.get_future()
        return plain.then(lambda future: future.value()[0])

    def averaged(future: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
        mean = future.value()[0]
        state.record_mean(torch.linalg.vector_norm(mean, dtype=torch.float64).square())
        return mean

    reduced: torch.futures.Future[list[torch.Tensor]] = work.get_future()
    return reduced.then(averaged)
