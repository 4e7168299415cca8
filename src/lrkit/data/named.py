"""Data given as dicts, as Hugging Face data comes (a ``datasets.Dataset``, a list of dicts,
a ``DataLoader`` whose collator makes dicts), read into memory as ``TensorData`` whose inputs
are named tensors (``data.features.Features``) and whose targets are the ``labels``."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import DataLoader

from lrkit.data.features import labelled
from lrkit.data.tensors import TensorData, tensor_data
from lrkit.errors import LrkitValueError

PAD = {"labels": -100, "attention_mask": 0}
"""What pads each key when batches of different lengths are joined (0 for any other key:
the attention mask hides those positions, and -100 labels count in no loss)."""


def named_data(value: object) -> TensorData | None:
    """Data given as dicts, as Hugging Face data comes, in memory as ``TensorData`` whose
    inputs are ``Features`` (every key, ``labels`` included, so that the model can compute
    its own loss) and whose targets are the ``labels``: a ``datasets.Dataset`` (columns of
    equal lengths: tokenized with padding), a list of dicts, or a ``DataLoader`` that yields
    dicts (its collator pads each batch; batches of different lengths are padded to the
    longest, ``PAD``). None for anything else."""
    if hasattr(value, "column_names") and hasattr(value, "with_format"):
        columns = value.with_format("torch")[:]
        return _as_data({name: _column(name, column) for name, column in columns.items()})
    if isinstance(value, list) and value and all(isinstance(row, Mapping) for row in value):
        keys = list(value[0])
        return _as_data({k: _column(k, [torch.as_tensor(row[k]) for row in value]) for k in keys})
    if isinstance(value, DataLoader) and _yields_dicts(value):
        batches = list(value)
        if batches and all(isinstance(b, Mapping) for b in batches):
            keys = list(batches[0])
            return _as_data({k: _joined(k, [torch.as_tensor(b[k]) for b in batches]) for k in keys})
    return None


def _yields_dicts(loader: object) -> bool:
    """Whether a DataLoader's examples are dicts, read off its dataset's first example (no
    batch is drawn: the loader's order is left as it was)."""
    try:
        first = loader.dataset[0]  # type: ignore[attr-defined]
    except (TypeError, IndexError, KeyError, NotImplementedError):
        return False
    return isinstance(first, Mapping)


def _column(name: str, column: object) -> torch.Tensor:
    """A column as one tensor; rows of different lengths are refused in one line."""
    if isinstance(column, torch.Tensor):
        return column
    rows = [torch.as_tensor(row) for row in column]  # type: ignore[attr-defined]
    if len({tuple(r.shape) for r in rows}) > 1:
        raise LrkitValueError(
            f"--data: the column {name!r} holds rows of different lengths; pad them when "
            "tokenizing (padding='max_length') or give a DataLoader whose collator pads"
        )
    return torch.stack(rows)


def _joined(name: str, parts: list[torch.Tensor]) -> torch.Tensor:
    """Batches of one key joined, each padded on its second axis to the longest."""
    if parts[0].dim() >= 2:
        longest = max(p.shape[1] for p in parts)
        pad = PAD.get(name, 0)
        parts = [
            torch.nn.functional.pad(
                p, (0, 0) * (p.dim() - 2) + (0, longest - p.shape[1]), value=pad
            )
            for p in parts
        ]
    return torch.cat(parts)


def _as_data(tensors: dict[str, torch.Tensor]) -> TensorData:
    return TensorData(*labelled(tensors))


def held_data(value: object, part: str) -> TensorData:
    """``value`` in memory as ``TensorData``: dicts as ``named_data`` reads them, or tensors
    (``TensorData`` or an ``(inputs, targets)`` pair); an error naming the ``part`` else."""
    named = named_data(value)
    return named if named is not None else tensor_data(value, part)  # type: ignore[arg-type]
