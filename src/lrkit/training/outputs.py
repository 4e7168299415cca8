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

from collections.abc import Mapping

import torch
from torch import nn

from lrkit.errors import LrkitValueError

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
