"""Evaluating a model on held-out data: mean loss and accuracy, in eval mode, no gradients."""

from __future__ import annotations

import math

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.training.outputs import LossFn as LossFn
from lrkit.training.outputs import call_model, loss_of, scored_hits


def evaluate(
    model: nn.Module, loss_fn: LossFn, data: TensorData, chunk: int | None = None
) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on all of ``data``, in one pass or in chunks of
    ``chunk`` examples. Accuracy is the share of counted targets (``outputs.IGNORE_INDEX``
    left out) that the argmax over the output's class axis matches: per example for a
    (batch, classes) output, per token for (batch, length, vocabulary)
    (``training.outputs``); it is nan for any output that scores no classes. The model's
    train/eval mode is given back."""
    was_training = model.training
    model.eval()
    size = len(data) if chunk is None else chunk
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.x.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.x.device)
    counted = torch.zeros((), dtype=torch.int64, device=data.x.device)
    classifies = True
    with torch.no_grad():
        for start in range(0, len(data), size):
            x, y = data.x[start : start + size], data.y[start : start + size]
            returned = call_model(model, x)
            loss_sum += loss_of(returned, loss_fn, y).double() * len(y)
            scored = scored_hits(returned, loss_fn, y) if classifies else None
            classifies = scored is not None
            if scored is not None:
                correct += scored[0]
                counted += scored[1]
    model.train(was_training)
    accuracy = float(correct) / int(counted) if classifies and int(counted) else math.nan
    return float(loss_sum) / len(data), accuracy
