"""Named input tensors: a batch as Hugging Face models take it (``input_ids``,
``attention_mask``, ``labels``, ...), held in memory like ``TensorData``'s inputs.

``Features`` stands where a tensor of inputs stands: it has a length (the examples), is cut
by the same indexes (``features[3:9]``, ``features[index_tensor]``), moves to a device, and a
model is called with it as keywords (``training.outputs.call_model``). Every tensor shares
the first dimension.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from lrkit.errors import LrkitValueError


@dataclass(frozen=True)
class Features:
    """Tensors by name, one row per example in each."""

    tensors: Mapping[str, torch.Tensor]

    def __post_init__(self) -> None:
        if not self.tensors:
            raise LrkitValueError("the inputs hold no tensor")
        lengths = {name: int(t.shape[0]) if t.dim() else 0 for name, t in self.tensors.items()}
        if len(set(lengths.values())) != 1:
            raise LrkitValueError(f"the inputs differ in length: {lengths}")

    def __len__(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    def __getitem__(self, index: object) -> Features:
        return Features({name: t[index] for name, t in self.tensors.items()})  # type: ignore[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    @property
    def shape(self) -> torch.Size:
        """(examples,): the one dimension every tensor shares."""
        return torch.Size([len(self)])

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Features:
        moved = {name: t.to(device, non_blocking=non_blocking) for name, t in self.tensors.items()}
        return Features(moved)

    def is_floating_point(self) -> bool:
        """False: ``fit_check.check_finite`` reads each tensor (``floating``) instead."""
        return False

    def floating(self) -> dict[str, torch.Tensor]:
        """The floating-point tensors, by name."""
        return {name: t for name, t in self.tensors.items() if t.is_floating_point()}

    def describe(self) -> str:
        """``input_ids (8, 12), attention_mask (8, 12)``: the names and shapes."""
        return ", ".join(f"{name} {tuple(t.shape)}" for name, t in self.tensors.items())


Inputs = torch.Tensor | Features
"""A batch's inputs: one tensor, or named tensors passed to the model as keywords."""

LABELS = "labels"
"""The key of the targets in a batch given as a dict (Hugging Face's)."""


def labelled(batch: Mapping[str, torch.Tensor]) -> tuple[Features, torch.Tensor]:
    """A dict batch as (named inputs, its ``labels``): every key stays among the inputs, so
    that the model can compute its own loss; a batch with no ``labels`` is refused."""
    if LABELS not in batch:
        message = (
            f"the batches hold no {LABELS!r} (keys: {sorted(batch)}); lrkit trains on the "
            "labels the model's loss reads"
        )
        raise LrkitValueError(message, cli_message=f"--data: {message}")
    return Features(dict(batch)), batch[LABELS]
