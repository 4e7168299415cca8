"""What a model returns, as lrkit reads it: one output tensor per batch, and, for a
classifier, the axis that holds its class scores.

A model may return that tensor itself, or wrapped as Hugging Face models wrap it: a
``ModelOutput`` with ``.logits`` (``BertForSequenceClassification``, ``GPT2LMHeadModel``), a
dict with ``"logits"``, or a tuple whose first tensor is the output (``return_dict=False``).
``output_tensor`` unwraps all of these; anything else is refused in one line that says what
came back and what would work.

**Classes.** With integer targets ``y``, the output scores classes when it has one axis more
than ``y``, and that axis is:

- the last, where the other axes are ``y``'s: (N, C) against (N,), and per token
  (N, L, V) against (N, L), as Hugging Face's language models return them;
- else the second, PyTorch's convention for ``nn.CrossEntropyLoss``: (N, C, d1, ...)
  against (N, d1, ...), as a segmentation network returns them.

Targets equal to ``IGNORE_INDEX`` (-100: padding, prompt tokens; Hugging Face's and
PyTorch's default) count in neither the loss nor the accuracy. ``CrossEntropy``, lrkit's
default loss, is ``nn.CrossEntropyLoss`` read that way: token-level cross-entropy for
(N, L, V) outputs, and exactly PyTorch's for every other shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from lrkit.data.features import LABELS, Features, Inputs
from lrkit.errors import LrkitValueError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(output, target)``: the mean over the batch, a scalar tensor."""

IGNORE_INDEX = -100
"""The target that counts in neither the loss nor the accuracy."""

USABLE = (
    "a tensor, an output with .logits (a Hugging Face ModelOutput), a dict with 'logits' or "
    "a tuple whose first element is a tensor"
)


def output_tensor(output: object) -> torch.Tensor:
    """The tensor of a model's ``output`` (the module's docstring), or a one-line error."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    got = type(output).__name__
    if isinstance(output, Mapping):
        got += f" with keys {sorted(map(str, output))}"
    message = f"the model returned {got}; lrkit needs {USABLE}"
    raise LrkitValueError(message, cli_message=f"--model: {message}")


def class_axis(output: torch.Tensor, y: torch.Tensor) -> int | None:
    """The axis of ``output`` that holds class scores for the integer targets ``y`` (-1 or
    1, as the module's docstring says), or None where ``output`` is no classifier's."""
    if y.is_floating_point() or y.is_complex() or output.dim() != y.dim() + 1:
        return None
    if output.shape[:-1] == y.shape:
        return -1
    if output.shape[0] == y.shape[0] and output.shape[2:] == y.shape[1:]:
        return 1
    return None


def hits(output: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(correct, counted): how many targets of ``y`` the argmax over ``output``'s class axis
    matches, and how many targets count (those not ``IGNORE_INDEX``), as int64 scalars; None
    where ``output`` is no classifier's."""
    axis = class_axis(output, y)
    if axis is None:
        return None
    counted = y != IGNORE_INDEX
    correct = (output.argmax(dim=axis) == y) & counted
    return correct.sum(), counted.sum()


class CrossEntropy(nn.CrossEntropyLoss):
    """lrkit's default loss: ``nn.CrossEntropyLoss`` (mean over the counted targets,
    ``IGNORE_INDEX`` left out) over the class axis of ``class_axis``. For an output whose
    class axis is the last of three or more (tokens: (N, L, V) against (N, L)), the scores
    are flattened to (N L, V) first: the token-level loss of Hugging Face's language models.
    Any other shape goes to PyTorch's loss as it is."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.dim() > 2 and class_axis(input, target) == -1:
            input, target = input.reshape(-1, input.shape[-1]), target.reshape(-1)
        return super().forward(input, target)


def call_model(model: nn.Module, x: Inputs) -> object:
    """``model(x)``, or ``model(**x)`` for named inputs, as it returned."""
    if isinstance(x, Features):
        return model(**x.tensors)
    return model(x)


class ModelLoss:
    """The model's own loss: the ``.loss`` its output carries, computed from the ``labels``
    among its inputs, as Hugging Face models compute it (a causal language model shifts the
    labels by one inside). lrkit's default where the inputs hold ``labels``.

    ``shift`` is how the output's scores line up with the labels, for the accuracy: 0 where
    position t scores label t (a classifier's, a token classifier's), 1 where it scores label
    t + 1 (a causal language model's), None where neither reproduces the model's loss (the
    accuracy is then not measured). ``align`` finds it once, on a first batch, by computing
    cross-entropy both ways and keeping the one equal to the model's own loss."""

    def __init__(self) -> None:
        self.shift: int | None = None

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise LrkitValueError(
            "the model's own loss is read from what it returns (loss_of), not computed from "
            "its scores"
        )

    def read(self, returned: object) -> torch.Tensor:
        """The loss the model returned, or a one-line error."""
        loss = getattr(returned, "loss", None)
        if loss is None and isinstance(returned, Mapping):
            loss = returned.get("loss")
        if not isinstance(loss, torch.Tensor):
            message = (
                f"the inputs hold labels but the model returned no loss (it returned "
                f"{type(returned).__name__}); give --loss to compute one from its scores"
            )
            raise LrkitValueError(message, cli_message=f"--model: {message}")
        return loss

    def align(self, returned: object, labels: torch.Tensor) -> None:
        """Set ``shift`` from one batch's output and labels (see the class)."""
        own = float(self.read(returned).detach())
        scores = output_tensor(returned).detach()
        self.shift = None
        for shift in (0, 1):
            pair = shifted(scores, labels, shift)
            if pair is None or not (pair[1] != IGNORE_INDEX).any():
                continue
            mine = float(CrossEntropy()(*pair))
            if abs(mine - own) <= ALIGN_TOLERANCE * max(1.0, abs(own)):
                self.shift = shift
                return


ALIGN_TOLERANCE = 1e-4
"""Relative agreement of lrkit's cross-entropy with the model's own loss that finds the
alignment of scores and labels (float32 sums of a batch agree to about 1e-6)."""


def shifted(
    scores: torch.Tensor, labels: torch.Tensor, shift: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The scores of positions t and the labels of positions t + ``shift`` (sequence
    outputs), or None where they score no classes that way."""
    if shift:
        if scores.dim() < 3 or labels.dim() < 2 or labels.shape[1] <= shift:
            return None
        scores, labels = scores[:, :-shift], labels[:, shift:]
    return (scores, labels) if class_axis(scores, labels) is not None else None


def loss_of(returned: object, loss_fn: LossFn, y: torch.Tensor) -> torch.Tensor:
    """The batch's loss from what the model returned: its own (``ModelLoss``), or
    ``loss_fn`` of its output tensor and the targets."""
    if isinstance(loss_fn, ModelLoss):
        return loss_fn.read(returned)
    return loss_fn(output_tensor(returned), y)


def batch_loss(model: nn.Module, loss_fn: LossFn, x: Inputs, y: torch.Tensor) -> torch.Tensor:
    """The loss of ``model`` on the batch ``(x, y)``."""
    return loss_of(call_model(model, x), loss_fn, y)


def scored_hits(
    returned: object, loss_fn: LossFn, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``hits`` of what the model returned against the targets, the scores lined up with
    them as the model's own loss does (``ModelLoss.shift``); None where no accuracy is
    measured."""
    scores = output_tensor(returned)
    if isinstance(loss_fn, ModelLoss):
        if loss_fn.shift is None:
            return None
        pair = shifted(scores, y, loss_fn.shift)
        return None if pair is None else hits(*pair)
    return hits(scores, y)


def default_loss(inputs: object) -> LossFn:
    """lrkit's loss when none is given: the model's own (``ModelLoss``) where the
    ``inputs`` (of the data, or of a first batch) are named and hold ``labels`` (a Hugging
    Face batch), else ``CrossEntropy``."""
    if isinstance(inputs, Features) and LABELS in inputs.tensors:
        return ModelLoss()
    return CrossEntropy()
