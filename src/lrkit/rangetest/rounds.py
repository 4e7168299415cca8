"""The PyTorch caller of the ask/tell range test: one pass of a program on a model.

It sets the lr on every param group (keeping their ratios to group 0), takes one optimizer
step per iteration (over ``accumulation_steps`` micro-batches), reports the mean loss, and at
the end of each hold optionally the loss on a fixed evaluation set. With ``amp`` on CUDA the
forward pass runs under autocast with a gradient scaler.

With a ``DistributedDataParallel`` model the batches are this rank's shards of the global
batches (``training.distributed.Shard``); the loss the test hears and the evaluation loss are
the means over the ranks (the same on every rank), so every rank's test takes the same
decisions and all stop together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from lrkit.data.features import Inputs
from lrkit.data.tensors import TensorData
from lrkit.rangetest.core import RangeTest, RoundRecord, Step
from lrkit.rangetest.programs import LrProgram
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.training import distributed
from lrkit.training.distributed import Shard
from lrkit.training.evaluate import LossFn, evaluate
from lrkit.training.outputs import batch_loss
from lrkit.training.step import accumulate

Batches = Iterator[tuple[Inputs, torch.Tensor]]
RunnerBatches = Iterator[tuple[Inputs, torch.Tensor] | Shard]
"""Batches, or in a data-parallel (DDP) run this rank's shards of the global batches."""
OnStep = Callable[[Step], None]


def run_round(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batches: RunnerBatches,
    program: LrProgram,
    settings: RangeTestSettings,
    eval_data: TensorData | None = None,
    on_step: OnStep | None = None,
) -> RoundRecord:
    """Run one range-test pass of ``program``; the caller restores the state afterwards."""
    test = RangeTest(program, settings.smoothing, settings.diverge_factor)
    groups = optimizer.param_groups
    reference = float(groups[0]["lr"])
    ratios = [float(g["lr"]) / reference if reference > 0 else 1.0 for g in groups]
    k = settings.accumulation_steps
    scaler = torch.amp.GradScaler("cuda") if settings.amp else None
    ddp = distributed.is_ddp(model)
    module = distributed.unwrap(model)

    def forward() -> torch.Tensor:
        batch = next(batches)
        x, y = (batch.x, batch.y) if isinstance(batch, Shard) else batch
        if settings.amp:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = batch_loss(model, loss_fn, x, y)
        else:
            loss = batch_loss(model, loss_fn, x, y)
        # A shard of an uneven global batch: its loss weighted so that DDP's mean of the
        # ranks' gradients is the global batch's (the weight is 1 otherwise).
        if isinstance(batch, Shard) and batch.weight != 1.0:
            loss = loss * batch.weight
        return loss

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()  # type: ignore[no-untyped-call]

    def no_sync() -> contextlib.AbstractContextManager[object]:
        # Under DDP the first k - 1 micro-batches accumulate locally; the last all-reduces.
        return model.no_sync() if ddp else contextlib.nullcontext()  # type: ignore[operator]

    model.train()
    while (step := test.ask()) is not None:
        for group, ratio in zip(groups, ratios, strict=True):
            group["lr"] = step.lr * ratio
        optimizer.zero_grad(set_to_none=True)
        if k == 1:
            loss = forward()
            backward(loss)
        else:
            # Mean-reduced losses: k micro-batches of size b give the gradient of one of k*b.
            loss = accumulate(lambda _: forward(), [1.0 / k] * k, backward, no_sync)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        test.tell(distributed.mean_over_ranks(loss.item()) if ddp else loss.item())
        if step.ends_hold and eval_data is not None and not test.finished:
            if ddp:
                measured = distributed.evaluate_over_ranks(
                    module, loss_fn, eval_data, settings.eval_batch_size
                )
            else:
                measured = evaluate(model, loss_fn, eval_data, settings.eval_batch_size)
            test.tell_eval(measured[0])
        if on_step is not None:
            on_step(step)
    return test.record()
