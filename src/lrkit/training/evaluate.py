"""Evaluating a model on held-out data: mean loss and accuracy, in eval mode, no gradients."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lrkit.data.tensors import TensorData

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(output, target)``: the mean over the batch, a scalar tensor."""


def evaluate(
    model: nn.Module, loss_fn: LossFn, data: TensorData, chunk: int | None = None
) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on all of ``data``, in one pass or in chunks of
    ``chunk`` examples. Accuracy compares the argmax of a 2-D output with integer targets;
    it is nan for any other output. The model's train/eval mode is given back."""
    was_training = model.training
    model.eval()
    size = len(data) if chunk is None else chunk
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.x.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.x.device)
    classifies = not data.y.is_floating_point()
    with torch.no_grad():
        for start in range(0, len(data), size):
            x, y = data.x[start : start + size], data.y[start : start + size]
            output = model(x)
            loss_sum += loss_fn(output, y).double() * x.shape[0]
            classifies = classifies and output.ndim == 2
            if classifies:
                correct += (output.argmax(dim=1) == y).sum()
    model.train(was_training)
    accuracy = float(correct) / len(data) if classifies else math.nan
    return float(loss_sum) / len(data), accuracy
