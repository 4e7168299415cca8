"""A trainer's own training step as the loss of lrkit's range test, on batches of any
structure.

lrkit's ``DataLoader`` path (``rangetest.batches``) reads ``(inputs, targets)`` pairs and a
loss of the model's output and the targets (``training.outputs``). A trainer that owns its
loss, as Lightning's ``training_step(batch, batch_idx)`` does, takes its batches whole, of
whatever structure its collate function builds: tuples, dicts, nested, with strings or other
non-tensors. Three small pieces carry such batches through ``find_lr`` untouched, with all its
guarantees (programs, rounds, repeats, bitwise restore):

- ``WholeBatch`` stands where the inputs stand: the batch as collated, moved to a device by
  the trainer's own function, with no targets beside it (``NO_TARGETS``);
- ``StepModel`` is a module around the trainer's model whose forward is the step's loss of a
  whole batch; its parameters, buffers and modes are the model's, so what ``find_lr`` saves,
  trains and restores is the model itself;
- ``returned_loss`` is the loss of a model that returns its loss: its output.

``whole_batches`` builds the ``DataLoader`` of such pairs over a dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

Move = Callable[[object, torch.device], object]
"""``move(batch, device)``: the batch with its tensors on ``device`` (the trainer's own
transfer, hooks included)."""
Step = Callable[[object], torch.Tensor]
"""``step(batch)``: the scalar loss of a whole batch, with its graph."""

NO_TARGETS = torch.empty(0)
"""The targets beside a whole batch: the step's loss reads none."""


@dataclass(frozen=True)
class WholeBatch:
    """A collated batch of ``examples`` examples, in place of the inputs; ``to`` moves it
    with ``move``, and ``shape`` is (examples,), as ``data.features.Features``' is."""

    value: object
    examples: int
    move: Move

    def to(self, device: torch.device | str, non_blocking: bool = False) -> WholeBatch:
        return WholeBatch(self.move(self.value, torch.device(device)), self.examples, self.move)

    @property
    def shape(self) -> torch.Size:
        return torch.Size([self.examples])

    def __len__(self) -> int:
        return self.examples


class StepModel(nn.Module):
    """``model`` whose forward is ``step``'s loss of a ``WholeBatch`` (the module's
    docstring)."""

    def __init__(self, model: nn.Module, step: Step) -> None:
        super().__init__()
        self.model = model
        self.step = step

    def forward(self, batch: WholeBatch) -> torch.Tensor:
        return self.step(batch.value)


def returned_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of a model that returns its batch's loss (``StepModel``): its output; the
    targets are not read."""
    return output


def whole_batches(
    dataset: Dataset,  # type: ignore[type-arg]
    batch_size: int,
    collate: Callable[[list[Any]], object],
    move: Move,
    *,
    drop_last: bool = False,
) -> DataLoader:  # type: ignore[type-arg]
    """``(WholeBatch, NO_TARGETS)`` pairs of ``batch_size`` examples of ``dataset``, each
    batch ``collate``d as the trainer collates it; a map-style dataset is shuffled by the
    loader's own generator (``find_lr`` reseeds it for every round and repeat), an iterable
    one read in its own order. In this process (no workers): the order is the generator's
    alone."""

    def collated(items: Sequence[Any]) -> tuple[WholeBatch, torch.Tensor]:
        return WholeBatch(collate(list(items)), len(items), move), NO_TARGETS

    shuffle = not isinstance(dataset, IterableDataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator() if shuffle else None,
        collate_fn=collated,
        drop_last=drop_last,
    )
