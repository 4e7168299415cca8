"""Per-trial losses of a stacked output and their gradient.

Cross-entropy (the default loss) has a closed-form gradient, softmax minus one-hot over the
batch size, computed directly. Any other loss ``loss(output, target)`` (a mean over the
batch) is called once per trial under autograd, on the output alone, so it may be any
PyTorch function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lrkit.training.evaluate import LossFn
from lrkit.training.outputs import CrossEntropy

aten = torch.ops.aten


def is_plain_cross_entropy(loss_fn: LossFn) -> bool:
    """Whether ``loss_fn`` is cross-entropy with no weights, smoothing or other reduction."""
    if loss_fn is F.cross_entropy:
        return True
    return (
        isinstance(loss_fn, nn.CrossEntropyLoss)
        and type(loss_fn) in (nn.CrossEntropyLoss, CrossEntropy)
        and loss_fn.weight is None
        and loss_fn.label_smoothing == 0.0
        and loss_fn.reduction == "mean"
    )


class StackedLoss:
    """``loss_fn`` applied to each trial's slice of a (K, B, ...) output."""

    def __init__(self, loss_fn: LossFn):
        self.loss_fn = loss_fn
        self.cross_entropy = is_plain_cross_entropy(loss_fn)

    def value_and_grad(
        self, output: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(losses (K,), d sum(losses) / d output); ``target`` is (K, B, ...), an expanded
        view when the trials share a batch."""
        if self.cross_entropy and output.dim() == 3 and not target.is_floating_point():
            b = output.shape[1]
            index = target.unsqueeze(-1)
            log_p = torch.log_softmax(output, -1)
            losses = log_p.gather(-1, index).squeeze(-1).mean(1).neg_()
            # nll_loss's gradient, then log_softmax's: the kernels autograd runs, so the
            # result (softmax - one-hot) / B rounds as the plain loop's does.
            grad = torch.zeros_like(log_p).scatter_(-1, index, -1.0 / b)
            return losses, aten._log_softmax_backward_data(grad, log_p, -1, log_p.dtype)
        leaf = output.detach().requires_grad_(True)
        with torch.enable_grad():
            losses = torch.stack([self.loss_fn(leaf[k], target[k]) for k in range(len(leaf))])
            losses.sum().backward()  # type: ignore[no-untyped-call]
        assert leaf.grad is not None
        return losses.detach(), leaf.grad

    def value(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Losses (K,) with no gradient."""
        if self.cross_entropy and output.dim() == 3 and not target.is_floating_point():
            index = target.unsqueeze(-1)
            return torch.log_softmax(output, -1).gather(-1, index).squeeze(-1).mean(1).neg_()
        return torch.stack([self.loss_fn(output[k], target[k]) for k in range(len(output))])
