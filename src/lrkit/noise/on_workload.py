"""``lrkit noise``'s run: :func:`~lrkit.noise.tracking.track_noise_scale` on a workload named
by the command line's options, on this process's device (one rank's, under ``torchrun``: the
model is wrapped in ``DistributedDataParallel`` there, and each rank trains on
``batch_size`` examples a step)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from lrkit import validation as check
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.noise import tracking
from lrkit.noise.tracking import NoisePoint, NoiseRun, NoiseSettings
from lrkit.training import distributed
from lrkit.training.fit_check import check_model_fits
from lrkit.training.optimizers import make_optimizer
from lrkit.workload import WorkloadSource


@dataclass(frozen=True)
class WorkloadNoiseRun:
    """A noise-scale run of a named workload: the training and measurements, and the
    optimizer it trains with at ``tracking.lr``."""

    workload: WorkloadSource
    tracking: NoiseSettings
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0


def track_workload(
    run: WorkloadNoiseRun,
    device: torch.device,
    notify: Callable[[str], None],
    watching: Callable[[], AbstractContextManager[Callable[[NoisePoint], None]]],
) -> NoiseRun:
    """B_simple over the training of ``run`` on ``device``, named by its workload;
    ``notify`` hears the workload's notes, and the training runs inside ``watching()``, which
    gives the callback of each measurement. Every size is checked against the training data
    and the model's first batch before training. The model lives only in this call: a DDP
    model must be gone before its process group is (see
    ``training.distributed.torchrun_group``)."""
    settings = run.tracking
    world = distributed.world_size()
    work = run.workload.load(notify)
    if not isinstance(work.train, TensorData) or work.val is None:
        raise LrkitValueError(
            "--data: the noise scale needs tensor data (TensorData or (x, y)) with a "
            "validation part"
        )
    train, val = work.train, work.val
    check_batch_fits(settings.batch_size, len(train), world)
    settings.check(len(train))  # before the model: nothing is built for nothing
    module = work.make_model(settings.seed).to(device)
    first = train.head(settings.batch_size).to(device)
    check_model_fits(module, work.loss_fn, first.x, first.y, targets=(train.y, val.y))
    net = distributed.wrap(module, device)
    opt = make_optimizer(run.optimizer, net, settings.lr, run.momentum, run.weight_decay)
    with watching() as on_point:
        return tracking.track_noise_scale(
            net,
            opt,
            work.loss_fn,
            train.to(device),
            val.to(device),
            settings,
            tracking.RunNames(work.model_name, work.data_name),
            on_point=on_point,
        )


def check_batch_fits(batch_size: int, n_train: int, world: int) -> None:
    """A batch of ``batch_size`` examples on each of ``world`` ranks, at most the training
    examples."""
    if batch_size * world > n_train:
        check.positive_int("batch_size", batch_size)
        per_rank = f" over {world} ranks" if world > 1 else ""
        raise LrkitValueError(
            f"--batch-size must be at most the number of training examples{per_rank} "
            f"({n_train}{f' / {world}' if world > 1 else ''}), got {batch_size}"
        )
