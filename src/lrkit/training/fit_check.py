"""The checks before any training: a clear error when the model, the data and the loss do not
fit together (no trainable parameter, a wrong input width, class labels the model's outputs
cannot score, a loss that raises, is not a scalar or has no gradient) or when the data hold
values that are not numbers, instead of a raw exception in the middle of a run or a run that
ends "done" on nan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from lrkit.data.features import Features, Inputs
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.training.evaluate import LossFn
from lrkit.training.outputs import ModelLoss, call_model, class_axis, output_tensor


def check_finite(parts: Mapping[str, TensorData], source: str | None = None) -> None:
    """Every floating-point input and target of ``parts`` (``{"training": data, ...}``) is
    finite. A nan input makes every loss of a batch that reads it nan; on validation data
    alone it gives a run that ends "done" with a nan loss and an accuracy at chance. The
    CLI's message starts with ``source`` (e.g. ``--data 'module:factory'``)."""
    for part, data in parts.items():
        inputs = data.x.floating() if isinstance(data.x, Features) else {"inputs": data.x}
        for kind, values in (*inputs.items(), ("targets", data.y)):
            if not values.is_floating_point():
                continue
            bad = ~torch.isfinite(values)
            count = int(bad.sum())
            if count:
                rows = int(bad.reshape(len(values), -1).any(dim=1).sum())
                message = (
                    f"the {part} {kind} hold {count} non-finite value{'s' if count > 1 else ''} "
                    f"(nan or inf), in {rows} of {len(values)} examples; lrkit trains on "
                    "numbers: clean or drop them"
                )
                cli = f"{source}: {message}" if source is not None else None
                raise LrkitValueError(message, cli_message=cli)


def check_model_fits(
    model: nn.Module,
    loss_fn: LossFn,
    x: Inputs,
    y: torch.Tensor,
    targets: Sequence[torch.Tensor] = (),
) -> None:
    """Run ``model`` on the batch ``x`` and ``loss_fn`` on its output and ``y``, in eval mode
    (the model's mode is given back; a DDP model should be passed unwrapped, so that its
    forward is no collective). With cross-entropy, the class labels of ``targets`` (all the
    targets a run will read; ``y`` is always checked) must lie in [0, the model's outputs).
    The forward keeps its graph, so that a loss with no gradient is found here and not at
    the first ``backward``; no gradient is computed. With the model's own loss
    (``outputs.ModelLoss``), that loss must come back, and how its scores line up with the
    labels is found here (``ModelLoss.align``)."""
    _check_trainable(model)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            try:
                returned = call_model(model, x)
            except LrkitValueError:
                raise  # a model that checks its own batches (an adapter) says what is wrong
            except Exception as exc:
                shape = x.describe() if isinstance(x, Features) else f"shape {tuple(x.shape)}"
                raise LrkitValueError(
                    f"the model fails on a batch of inputs of {shape}: {type(exc).__name__}: {exc}"
                ) from None
            output = output_tensor(returned)
            if isinstance(loss_fn, ModelLoss):
                loss = loss_fn.read(returned)
                loss_fn.align(returned, y)
                _check_loss(loss, output)
                return
            if isinstance(loss_fn, nn.CrossEntropyLoss) and y.dtype == torch.int64:
                _check_labels(output, y, (y, *targets), loss_fn.ignore_index)
            try:
                loss = loss_fn(output, y)
            except Exception as exc:
                raise LrkitValueError(
                    f"the loss fails on the model's output of shape {tuple(output.shape)} and "
                    f"targets of shape {tuple(y.shape)}: {type(exc).__name__}: {exc}"
                ) from None
            _check_loss(loss, output)
    finally:
        model.train(was_training)


def _check_trainable(model: nn.Module) -> None:
    """The model has parameters, and not all of them are frozen."""
    parameters = list(model.parameters())
    if not parameters:
        raise LrkitValueError(
            "the model has no parameters: nothing to train",
            cli_message="--model: the model has no parameters: nothing to train",
        )
    if not any(p.requires_grad for p in parameters):
        message = (
            f"every parameter of the model is frozen (requires_grad is False on all "
            f"{len(parameters)} of its tensors): nothing to train"
        )
        raise LrkitValueError(message, cli_message=f"--model: {message}")


def _check_labels(
    output: torch.Tensor, y: torch.Tensor, targets: Sequence[torch.Tensor], ignored: int
) -> None:
    """Cross-entropy's class labels lie in [0, the output's classes) in every one of
    ``targets``, except ``ignored`` (its ``ignore_index``): a label out of range would raise
    an IndexError at the first batch that reads it."""
    labels = [t[t != ignored] for t in targets if t.dtype == torch.int64]
    labels = [t for t in labels if t.numel()]
    low = min((int(t.min()) for t in labels), default=0)
    high = max((int(t.max()) for t in labels), default=0)
    if low < 0:
        message = (
            f"the class labels include {low}: cross-entropy's labels are 0, 1, ... (one per "
            "output of the model)"
        )
        raise LrkitValueError(message, cli_message=f"--data: {message}")
    axis = class_axis(output, y)
    if axis is None or output.shape[axis] <= high:
        wanted = (
            f"({y.shape[0]}, >= {high + 1})"
            if y.dim() == 1
            else f"{(*y.shape, high + 1)} or more classes on the last axis"
        )
        message = (
            f"the model's output of shape {tuple(output.shape)} does not fit labels "
            f"0..{high} of shape {tuple(y.shape)}: expected {wanted}"
        )
        raise LrkitValueError(message, cli_message=f"--model and --data do not fit: {message}")


def _check_loss(loss: object, output: torch.Tensor) -> None:
    """A scalar tensor with a gradient to follow back to the model's parameters."""
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        message = f"the loss must be a scalar tensor (mean over the batch), got {shape}"
        raise LrkitValueError(message, cli_message=f"--loss: {message}")
    if not output.requires_grad:
        message = "the model's output does not depend on its trainable parameters: nothing to train"
        raise LrkitValueError(message, cli_message=f"--model: {message}")
    if not loss.requires_grad:
        message = (
            "the loss has no gradient (it does not depend on the model's output, or "
            "detaches it): training cannot follow it"
        )
        raise LrkitValueError(message, cli_message=f"--loss: {message}")
