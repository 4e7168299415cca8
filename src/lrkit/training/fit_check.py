"""One forward pass before any training: a clear error when the model, the data and the loss
do not fit together (a wrong input width, too few outputs for the labels, a loss that raises or
is not a scalar), instead of a raw exception in the middle of a run."""

from __future__ import annotations

import torch
from torch import nn

from lrkit.errors import LrkitValueError
from lrkit.training.evaluate import LossFn


def check_model_fits(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> None:
    """Run ``model`` on the batch ``x`` and ``loss_fn`` on its output and ``y``, in eval mode
    and without gradients (the model's mode is given back; a DDP model should be passed
    unwrapped, so that its forward is no collective)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                output = model(x)
            except Exception as exc:
                raise LrkitValueError(
                    f"the model fails on a batch of inputs of shape {tuple(x.shape)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            if isinstance(loss_fn, nn.CrossEntropyLoss) and y.dtype == torch.int64:
                classes = int(y.max()) + 1
                if output.ndim != 2 or output.shape[0] != y.shape[0] or output.shape[1] < classes:
                    raise LrkitValueError(
                        f"the model's output of shape {tuple(output.shape)} does not fit labels "
                        f"0..{classes - 1}: expected ({y.shape[0]}, >= {classes})"
                    )
            try:
                loss = loss_fn(output, y)
            except Exception as exc:
                raise LrkitValueError(
                    f"the loss fails on the model's output of shape {tuple(output.shape)} and "
                    f"targets of shape {tuple(y.shape)}: {type(exc).__name__}: {exc}"
                ) from None
            if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise LrkitValueError(
                    f"the loss must be a scalar tensor (mean over the batch), got {shape}"
                )
    finally:
        model.train(was_training)
