"""The PyTorch caller of the ask/tell range test: one pass of a program on a model.

It sets the lr on every param group (keeping their ratios to group 0), takes one optimizer
step per iteration (over ``accumulation_steps`` micro-batches), reports the mean loss, and at
the end of each hold optionally the loss on a fixed evaluation set. With ``amp`` on CUDA the
forward pass runs under autocast with a gradient scaler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.programs import LrProgram
from lrkit.rangetest import RangeTest, RoundRecord, Step
from lrkit.training.evaluate import LossFn, evaluate

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]
OnStep = Callable[[Step], None]


@dataclass(frozen=True)
class RunnerSettings:
    """How each iteration is run."""

    smoothing: float = 0.98
    diverge_factor: float = 4.0
    accumulation_steps: int = 1
    amp: bool = False
    eval_batch_size: int = 1024


def run_round(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batches: Batches,
    program: LrProgram,
    settings: RunnerSettings,
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

    def forward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if settings.amp:
            with torch.autocast("cuda", dtype=torch.float16):
                return loss_fn(model(x), y)
        return loss_fn(model(x), y)

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()  # type: ignore[no-untyped-call]

    model.train()
    while (step := test.ask()) is not None:
        for group, ratio in zip(groups, ratios, strict=True):
            group["lr"] = step.lr * ratio
        optimizer.zero_grad(set_to_none=True)
        if k == 1:
            loss = forward(*next(batches))
            backward(loss)
        else:
            # Mean-reduced losses: k micro-batches of size b give the gradient of one of k*b.
            total = torch.zeros((), device=next(iter(model.parameters())).device)
            for _ in range(k):
                micro = forward(*next(batches))
                backward(micro / k)
                total += micro.detach().float()
            loss = total / k
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        test.tell(loss.item())
        if step.ends_hold and eval_data is not None and not test.finished:
            test.tell_eval(evaluate(model, loss_fn, eval_data, settings.eval_batch_size)[0])
        if on_step is not None:
            on_step(step)
    return test.record()
