"""``lrkit find``'s range test: :func:`~lrkit.rangetest.find.find_lr` on a workload named by
the command line's options, on this process's device (one rank's, under ``torchrun``: the
model is wrapped in ``DistributedDataParallel`` there)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from lrkit.data.tensors import TensorData
from lrkit.rangetest import find
from lrkit.rangetest.result import RangeTestResult
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.training import distributed
from lrkit.training.optimizers import make_optimizer
from lrkit.workload import WorkloadSource


@dataclass(frozen=True)
class WorkloadRangeTest:
    """A range test of a named workload: the test's settings, the optimizer it trains with
    (its lr set by the program) and the validation examples whose loss is measured after
    each hold (0: none)."""

    workload: WorkloadSource
    test: RangeTestSettings
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    eval_size: int = 1000
    optimizer_args: str | None = None
    """JSON keyword arguments of the optimizer besides the lr (``training.optimizers``)."""


def range_test_workload(
    run: WorkloadRangeTest,
    device: torch.device,
    notify: Callable[[str], None],
    watching: Callable[[], AbstractContextManager[find.OnRoundStep]],
) -> RangeTestResult:
    """The range test of ``run`` on ``device``, named by its workload; ``notify`` hears the
    workload's notes, and the test runs inside ``watching()``, which gives the callback of
    each step. The model lives only in this call: a DDP model must be gone before its
    process group is (see ``training.distributed.torchrun_group``)."""
    work = run.workload.load(notify)
    net = distributed.wrap(work.make_model(run.test.seed).to(device), device)
    first_lr = run.test.lr_program.lrs[0]
    opt = make_optimizer(
        run.optimizer, net, first_lr, run.momentum, run.weight_decay, run.optimizer_args
    )
    eval_data = (
        work.val.head(run.eval_size) if (work.val is not None and run.eval_size > 0) else None
    )
    train = work.train.to(device) if isinstance(work.train, TensorData) else work.train
    # What the model draws as it trains (dropout) comes from the global RNG, which torch seeds
    # afresh in every process: seeded here, so that the same command gives the same test.
    cuda = [device.index or 0] if device.type == "cuda" else []
    with watching() as on_step, torch.random.fork_rng(devices=cuda):
        torch.manual_seed(run.test.seed)
        result = find.find_lr(
            net,
            train,
            run.test,
            loss_fn=work.loss_fn,
            optimizer=opt,
            eval_data=eval_data,
            on_step=on_step,
        )
    return dataclasses.replace(result, model=work.model_name, data=work.data_name)
