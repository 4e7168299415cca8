"""One training step on one batch, shared by everything that trains a single model: the trial
loop (``training.loop``), the coordinate check (``laws.transfer``) and the step-time
measurement (``batchsize.throughput``).

A step is: zero the gradients (``set_to_none``), forward, loss, backward, optimizer step. Over
k micro-batches (gradient accumulation, ``accumulate``: what the range test's rounds run too),
each micro-batch's loss is scaled by its share of the batch before its backward pass, so the
summed gradients are the gradient of the batch's mean loss: exactly the step one batch of all
of them takes, for a loss that is a mean over examples, at a k-th of the activations' memory.
A loss that is a mean over tokens with some left out (-100 labels: padding) is weighted by
examples too, so where micro-batches hold different numbers of counted tokens the step is
close to the whole batch's, not equal (as in the Hugging Face Trainer before
``num_items_in_batch``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from lrkit.data.features import Inputs
from lrkit.training.evaluate import LossFn
from lrkit.training.outputs import batch_loss

MakeOptimizer = Callable[[nn.Module], torch.optim.Optimizer]
"""A model's optimizer, made fresh for it."""


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: Inputs,
    y: torch.Tensor,
    weight: float = 1.0,
    micro_batches: int = 1,
) -> torch.Tensor:
    """Train ``model`` one step on the batch ``(x, y)``; return the batch's loss (detached
    by the caller as it needs). ``weight`` scales the loss before the backward pass: a
    data-parallel rank's share of an uneven global batch (``training.distributed.Shard``);
    at 1 the loss is left as it is. With ``micro_batches`` k > 1 the batch is cut into k
    consecutive micro-batches whose gradients accumulate (``accumulate``; their sizes differ
    by one at most where k does not divide the batch; a batch of fewer rows than k is cut
    into single rows)."""
    optimizer.zero_grad(set_to_none=True)
    micro_batches = min(micro_batches, int(y.shape[0]))
    if micro_batches <= 1:
        loss = batch_loss(model, loss_fn, x, y)
        if weight != 1.0:
            loss = loss * weight
        loss.backward()  # type: ignore[no-untyped-call]
    else:
        bounds = micro_bounds(int(y.shape[0]), micro_batches)

        def forward(index: int) -> torch.Tensor:
            start, stop = bounds[index]
            return batch_loss(model, loss_fn, x[start:stop], y[start:stop]) * weight

        shares = [(stop - start) / int(y.shape[0]) for start, stop in bounds]
        loss = accumulate(forward, shares, lambda part: part.backward())  # type: ignore[no-untyped-call]
    optimizer.step()
    return loss


def micro_bounds(size: int, micro_batches: int) -> list[tuple[int, int]]:
    """``micro_batches`` consecutive slices (start, stop) of a batch of ``size`` rows, as even
    as they come (the first ``size % micro_batches`` one row longer)."""
    if not 1 <= micro_batches <= size:
        raise ValueError(f"need 1 <= micro_batches <= {size} rows, got {micro_batches}")
    base, extra = divmod(size, micro_batches)
    bounds, start = [], 0
    for index in range(micro_batches):
        stop = start + base + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def accumulate(
    forward: Callable[[int], torch.Tensor],
    shares: Sequence[float],
    backward: Callable[[torch.Tensor], None],
    no_sync: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
) -> torch.Tensor:
    """Gradient accumulation: for each micro-batch i, ``forward(i)`` (its mean loss) scaled by
    ``shares[i]`` (its share of the batch's examples, summing to 1) goes to ``backward``;
    every backward pass but the last runs under ``no_sync`` (DDP's: the ranks all-reduce
    once, after the last). The batch's loss is returned detached: the shares' weighted sum of
    the micro-batches' losses, in float32 at least (a float64 model's in float64)."""
    total: torch.Tensor | None = None
    last = len(shares) - 1
    for index, share in enumerate(shares):
        quiet = no_sync is not None and index < last
        with no_sync() if quiet and no_sync is not None else contextlib.nullcontext():
            micro = forward(index)
            backward(micro * share)
        value = micro.detach()
        value = value.to(torch.promote_types(value.dtype, torch.float32)) * share
        total = value if total is None else total + value
    if total is None:
        raise ValueError("no micro-batches to accumulate")
    return total
