"""The wall time of one training step at each batch size, measured on the user's device.

For each size: a fresh copy of the model and its optimizer, ``WARMUP`` steps untimed (the
first calls allocate and pick kernels), then steps timed until ``MIN_SECONDS`` have passed
and at least ``MIN_STEPS`` were taken (at most ``MAX_STEPS``); the median of the timed steps
is the step time. A step is the trial loop's (``training.step.train_step``) on a batch of
random examples: zero the gradients, forward, loss, backward, optimizer step; on CUDA each
step ends with a synchronisation so that it is timed whole. It is one model's step, as the
user's training will run it, not the race's stacked ones.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.training.evaluate import LossFn
from lrkit.training.step import MakeOptimizer, train_step

WARMUP = 2
MIN_STEPS = 5
MAX_STEPS = 50
MIN_SECONDS = 0.2


@dataclass(frozen=True)
class StepTime:
    """The measured step time at one batch size."""

    batch_size: int
    seconds: float
    """The median over the timed steps."""
    steps: int
    spread: float
    """The timed steps' interquartile range over their median (0 with fewer than 4)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "seconds": self.seconds,
            "steps": self.steps,
            "spread": self.spread,
        }


def measure_step_times(
    model: nn.Module,
    loss_fn: LossFn,
    train: TensorData,
    batch_sizes: Sequence[int],
    make_optimizer: MakeOptimizer,
    *,
    seed: int = 0,
    on_size: Callable[[StepTime], None] | None = None,
) -> tuple[StepTime, ...]:
    """Time a training step of (a copy of) ``model``, with ``make_optimizer(copy)``, at each of
    ``batch_sizes``; ``model`` itself is not touched."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    cuda = train.x.device.type == "cuda"
    found = []
    for size in batch_sizes:
        trial = copy.deepcopy(model)
        trial.train()
        opt = make_optimizer(trial)
        times: list[float] = []
        spent, taken = 0.0, 0
        while taken < WARMUP + MIN_STEPS or (spent < MIN_SECONDS and taken < WARMUP + MAX_STEPS):
            index = torch.randint(len(train), (size,), generator=generator).to(train.x.device)
            started = time.perf_counter()
            train_step(trial, opt, loss_fn, train.x[index], train.y[index])
            if cuda:
                torch.cuda.synchronize(train.x.device)
            elapsed = time.perf_counter() - started
            taken += 1
            if taken > WARMUP:
                times.append(elapsed)
                spent += elapsed
        median = statistics.median(times)
        spread = 0.0
        if len(times) >= 4:
            q1, _, q3 = statistics.quantiles(times, n=4)
            spread = (q3 - q1) / median if median > 0 else 0.0
        step = StepTime(size, median, len(times), spread)
        found.append(step)
        if on_size is not None:
            on_size(step)
        del trial, opt
    return tuple(found)
