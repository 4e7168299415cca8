"""A range-test round on the vectorized engine: R repeats of one program in lockstep.

Repeat r reads the data in the order seeded by ``seed + r`` (``BatchStream``'s order), all
from the model's initial weights; each has its own ask/tell ``RangeTest``, so each smooths
and stops on its own. A repeat that diverges leaves the stack; the others go on. With one
repeat this is the plain runner's round, step for step, at a fraction of the per-step
overhead (no autograd bookkeeping).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lrkit.data.features import Inputs
from lrkit.data.tensors import TensorData
from lrkit.rangetest.core import RangeTest, RoundRecord, Step
from lrkit.rangetest.programs import LrProgram
from lrkit.rangetest.rounds import OnStep
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.training.evaluate import LossFn
from lrkit.training.vectorized.loop import evaluate_stack
from lrkit.training.vectorized.loss import StackedLoss
from lrkit.training.vectorized.network import (
    NotStackableError,
    check_stackable,
    stack_models,
    tensor_inputs,
)
from lrkit.training.vectorized.sgd import StackedSGD


def stacking_problem(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: object,
    settings: RangeTestSettings,
    example: Inputs | None,
) -> str | None:
    """Why this range test cannot run on the vectorized engine, or None when it can."""
    if isinstance(model, DistributedDataParallel):
        return "a distributed (DDP) model runs on the plain loop"
    if not isinstance(data, TensorData) or example is None:
        return "the vectorized engine needs tensor data (TensorData or (x, y)), not a DataLoader"
    if settings.amp:
        return "mixed precision (amp) runs on the plain loop"
    if settings.accumulation_steps != 1:
        return "gradient accumulation runs on the plain loop"
    group = optimizer.param_groups[0] if len(optimizer.param_groups) == 1 else None
    plain_sgd = (
        type(optimizer) is torch.optim.SGD
        and group is not None
        and not group.get("nesterov", False)
        and group.get("dampening", 0) == 0
        and not group.get("maximize", False)
        and not optimizer.state
    )
    if not plain_sgd:
        return (
            "the vectorized engine implements a fresh torch.optim.SGD with one param group "
            f"(momentum and weight decay allowed), not this {type(optimizer).__name__}"
        )
    try:
        check_stackable(model, example)
    except NotStackableError as exc:
        return str(exc)
    return None


def run_stacked_round(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    data: TensorData,
    program: LrProgram,
    settings: RangeTestSettings,
    eval_data: TensorData | None = None,
    on_step: OnStep | None = None,
) -> list[RoundRecord]:
    """One round of ``program`` for each repeat (data orders ``settings.seed + r``); their
    records, in order.

    ``on_step`` hears each iteration once (for all repeats). The model and optimizer are
    read, not changed."""
    group = optimizer.param_groups[0]
    repeats = settings.repeats
    seeds = [settings.seed + r for r in range(repeats)]
    network = stack_models([model] * repeats, data.x[:2], repeats > 1)
    sgd = StackedSGD(
        network.params,
        [program.lrs[0]] * repeats,
        [float(group.get("momentum", 0.0))] * repeats,
        [float(group.get("weight_decay", 0.0))] * repeats,
    )
    loss = StackedLoss(loss_fn)
    tests = [RangeTest(program, settings.smoothing, settings.diverge_factor) for _ in seeds]
    batches = _LockstepBatches(data, settings.batch_size, seeds)
    alive = list(range(repeats))
    while (step := _ask_all(tests, alive)) is not None:
        sgd.neg_lr.fill_(-step.lr)
        x, y = batches.next(alive)
        output = network.forward(x, True)
        losses, grad = loss.value_and_grad(output, y)
        network.backward(grad)
        sgd.step()
        for index, value in zip(alive, losses.tolist(), strict=True):
            tests[index].tell(value)
        running = [i for i in alive if not tests[i].finished]
        if step.ends_hold and eval_data is not None and running:
            evaluated = evaluate_stack(
                network, loss, eval_data, repeats > 1, settings.eval_batch_size
            )
            for position, index in enumerate(alive):
                if not tests[index].finished:
                    tests[index].tell_eval(evaluated[position][0])
        if on_step is not None:
            on_step(step)
        if len(running) < len(alive):  # diverged repeats leave the stack
            kept = torch.tensor(
                [p for p, i in enumerate(alive) if i in running],
                dtype=torch.long,
                device=data.x.device,
            )
            network.keep(kept)
            sgd.keep(kept)
            alive = running
        if not alive:
            break
    return [test.record() for test in tests]


def _ask_all(tests: list[RangeTest], alive: list[int]) -> Step | None:
    """The next step of the live repeats (one program: the same step for all), or None."""
    steps = [tests[i].ask() for i in alive]
    return steps[0] if steps else None


class _LockstepBatches:
    """``BatchStream``'s batches for several seeds at once: repeat r's batch t is the one a
    ``BatchStream(data, batch_size, seeds[r])`` gives at t."""

    def __init__(self, data: TensorData, batch_size: int, seeds: list[int]):
        self.data, self.batch_size = data, batch_size
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.shared = len(seeds) == 1
        self.orders: torch.Tensor | None = None
        self.start = len(data)

    def next(self, alive: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.data)
        if self.start >= n:
            device = self.data.x.device
            self.orders = torch.stack([torch.randperm(n, generator=g) for g in self.generators]).to(
                device
            )
            self.start = 0
        assert self.orders is not None
        index = self.orders[:, self.start : self.start + self.batch_size]
        self.start += self.batch_size
        inputs = tensor_inputs(self.data.x)
        if self.shared:
            x, y = inputs[index[0]], self.data.y[index[0]]
            return x, y.expand(1, *y.shape)
        index = index[alive]
        return inputs[index], self.data.y[index]
