"""A trainer's own step as the range test's loss, on whole batches of any structure
(``training.whole_batches``): the same test as ``find_lr`` on (inputs, targets) pairs with the
same loss, and a step's own one-line error passes through the fit check as it is."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, default_collate

from lrkit.errors import LrkitValueError
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.training.whole_batches import StepModel, returned_loss, whole_batches

SETTINGS = RangeTestSettings(batch_size=8, program="1e-3:1e-2:3e-3@2,1e-2:3:0.3@2", repeats=2)


def data() -> TensorDataset:
    x = torch.randn(96, 5, generator=torch.Generator().manual_seed(0))
    return TensorDataset(x, x[:, :3].argmax(dim=1))


def moved(batch: object, device: torch.device) -> object:
    return [t.to(device) for t in batch]  # type: ignore[attr-defined]


def test_a_step_over_whole_batches_is_find_lrs_test_on_pairs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    oracle_model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    oracle_model.load_state_dict(model.state_dict())

    def step(batch: Any) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    loader = whole_batches(data(), 8, default_collate, moved)
    ours = find_lr(StepModel(model, step), loader, SETTINGS, loss_fn=returned_loss)
    pairs = DataLoader(data(), batch_size=8, shuffle=True, generator=torch.Generator())
    oracle = find_lr(oracle_model, pairs, SETTINGS)
    assert ours.suggested_lr is not None
    same = {"seconds": 0.0, "model": ""}
    assert replace(ours, **same) == replace(oracle, **same)


def test_a_steps_own_error_is_the_error() -> None:
    def step(batch: Any) -> torch.Tensor:
        raise LrkitValueError("training_step must return the loss")

    loader = whole_batches(data(), 8, default_collate, moved)
    with pytest.raises(LrkitValueError, match=r"^training_step must return the loss$"):
        find_lr(StepModel(nn.Linear(5, 3), step), loader, SETTINGS, loss_fn=returned_loss)
