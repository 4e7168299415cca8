"""Where the range test's batches come from: tensors (cut by index on the model's device, in
``BatchStream``'s seeded order), a ``Dataset`` or a ``DataLoader`` (reseeded for every round
and repeat); on a DDP model, this rank's shard of each global batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import cast

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lrkit import validation as check
from lrkit.data.features import Inputs, labelled
from lrkit.data.tensors import BatchStream, TensorData, tensor_data_from
from lrkit.errors import LrkitValueError
from lrkit.rangetest.rounds import RunnerBatches
from lrkit.training import distributed

DataLike = TensorData | tuple[torch.Tensor, torch.Tensor] | Dataset | DataLoader  # type: ignore[type-arg]


def as_tensor_data(
    data: TensorData | tuple[torch.Tensor, torch.Tensor], device: torch.device
) -> TensorData:
    tensors = tensor_data_from(data)
    if tensors is None:
        raise LrkitValueError(
            "expected TensorData or an (inputs, targets) pair of tensors, got "
            f"{type(data).__name__}"
        )
    return tensors.to(device)


def rank_local(loader: DataLoader) -> bool:  # type: ignore[type-arg]
    """True when the loader's batches are already this rank's (a ``DistributedSampler``)."""
    return isinstance(loader.sampler, DistributedSampler)


def batch_source(
    data: DataLike, batch_size: int, device: torch.device, world: int = 1
) -> Callable[[int], RunnerBatches]:
    """A factory of batch iterators in the order seeded by its argument (one per round and
    repeat). With ``world`` > 1 (a DDP model) each yields this rank's shard of the global
    batches, which hold ``batch_size`` x ``world`` examples."""
    if isinstance(data, DataLoader):
        loader = data
        local = rank_local(loader)

        def from_loader(seed: int) -> RunnerBatches:
            generator = getattr(loader, "generator", None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(seed)
            if isinstance(loader.sampler, DistributedSampler):
                loader.sampler.set_epoch(seed)  # its order: its seed + this "epoch"
            return _sharded(_to_device(_cycle(loader), device), world > 1 and not local)

        return from_loader
    if isinstance(data, Dataset) and not isinstance(data, TensorData):
        loader_generator = torch.Generator()
        loader = DataLoader(
            data, batch_size=batch_size * world, shuffle=True, generator=loader_generator
        )

        def from_dataset(seed: int) -> RunnerBatches:
            loader_generator.manual_seed(seed)
            return _sharded(_to_device(_cycle(loader), device), world > 1)

        return from_dataset
    tensors = as_tensor_data(data, device)
    check.positive_int("batch_size", batch_size)

    def from_tensors(seed: int) -> RunnerBatches:
        return _sharded(iter(BatchStream(tensors, batch_size * world, seed)), world > 1)

    from_tensors(0)  # check the batch size against the data now
    return from_tensors


def _sharded(batches: Iterator[tuple[Inputs, torch.Tensor]], shard: bool) -> RunnerBatches:
    return distributed.shard_batches(batches) if shard else batches


def _cycle(loader: DataLoader) -> Iterator[tuple[Inputs, torch.Tensor]]:  # type: ignore[type-arg]
    """The loader's batches, round after round: ``(inputs, targets)`` pairs, or dicts (a
    Hugging Face collator's) as named inputs with their ``labels`` as the targets."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield _pair(batch)
        if empty:
            raise LrkitValueError("the DataLoader yields no batches")


def _pair(batch: object) -> tuple[Inputs, torch.Tensor]:
    if isinstance(batch, Mapping):
        return labelled(batch)
    inputs, targets = cast("tuple[Inputs, torch.Tensor]", batch)
    return inputs, targets


def _to_device(
    batches: Iterator[tuple[Inputs, torch.Tensor]], device: torch.device
) -> Iterator[tuple[Inputs, torch.Tensor]]:
    for x, y in batches:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
