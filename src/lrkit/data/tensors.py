"""Data held in memory as tensors, and batches cut from it by index.

For data that fits in memory (MNIST is 47 MB as float32) the whole set lives on the training
device and each batch is an index gather: no ``DataLoader`` workers, collation or host copies,
whose per-batch overhead dwarfs the arithmetic of a small network.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lrkit import validation as check
from lrkit.data.features import Inputs
from lrkit.errors import InvalidParameterError, LrkitValueError


@dataclass(frozen=True)
class TensorData:
    """Inputs ``x`` (a tensor, or named tensors: ``data.features.Features``) and targets
    ``y`` with the same first dimension."""

    x: Inputs
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise LrkitValueError(
                f"inputs and targets differ in length: {self.x.shape[0]} vs {self.y.shape[0]}"
            )
        if self.x.shape[0] == 0:
            raise LrkitValueError("the data set is empty")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device) -> TensorData:
        return TensorData(self.x.to(device), self.y.to(device))

    def head(self, n: int) -> TensorData:
        """The first ``n`` examples (all of them if there are fewer)."""
        return TensorData(self.x[:n], self.y[:n])

    def split(self, fraction: float) -> tuple[TensorData, TensorData]:
        """(rest, last ``fraction`` of the examples): a deterministic validation split.

        The classic MNIST split keeps the last 5,000 of 60,000 training images (1/12) for
        validation; this does the same for any size.
        """
        fraction = check.float_in("val_fraction", fraction, 0.0, 1.0, low_open=True, high_open=True)
        n_val = max(1, round(len(self) * fraction))
        if n_val >= len(self):
            raise InvalidParameterError(
                "val_fraction",
                f"small enough to leave training data ({len(self)} examples)",
                fraction,
            )
        cut = len(self) - n_val
        return TensorData(self.x[:cut], self.y[:cut]), TensorData(self.x[cut:], self.y[cut:])


def tensor_data_from(value: object) -> TensorData | None:
    """``value`` as ``TensorData``: itself, or an ``(inputs, targets)`` pair of tensors; None
    for anything else (each caller says, in its own words, what it takes)."""
    if isinstance(value, TensorData):
        return value
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(t, torch.Tensor) for t in value)
    ):
        return TensorData(value[0], value[1])
    return None


def tensor_data(data: TensorData | tuple[torch.Tensor, torch.Tensor], part: str) -> TensorData:
    """``data`` as ``TensorData``, or an error that names the ``part`` (train, val) it is."""
    tensors = tensor_data_from(data)
    if tensors is None:
        raise LrkitValueError(
            f"{part} must be TensorData or an (inputs, targets) pair of tensors, got "
            f"{type(data).__name__}"
        )
    return tensors


class BatchStream:
    """Batches of ``batch_size`` cut by index from a fresh seeded permutation each epoch.

    The last, partial batch of an epoch is used. Iterating goes on across epochs for ever;
    ``epoch`` and ``batch_index`` say where the stream is.
    """

    def __init__(
        self, data: TensorData, batch_size: int, seed: int = 0, shuffle: bool = True
    ) -> None:
        self.data = data
        self.batch_size = check.positive_int("batch_size", batch_size)
        if self.batch_size > len(data):
            raise InvalidParameterError(
                "batch_size", f"at most the number of training examples ({len(data)})", batch_size
            )
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.batch_index = 0

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Inputs, torch.Tensor]]:
        device = self.data.x.device
        n = len(self.data)
        while True:
            if self.shuffle:
                order = torch.randperm(n, generator=self.generator).to(device)
            else:
                order = torch.arange(n, device=device)
            for batch_index, start in enumerate(range(0, n, self.batch_size)):
                self.batch_index = batch_index
                index = order[start : start + self.batch_size]
                yield self.data.x[index], self.data.y[index]
            self.epoch += 1
