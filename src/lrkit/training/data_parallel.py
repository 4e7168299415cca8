"""The trial loop's hooks for a data-parallel run: ``training.loop.train_trial`` on a
``DistributedDataParallel`` model in a job of several processes.

Every rank reads the global batches of ``plan.batch_size`` x world examples in the order one
process with that batch size reads (``training.clock``), and trains on its share of each
(``training.distributed.shard``); the training and validation losses are the means over all
ranks, so every rank sees the same checks and stops together when the loss is not finite.
The ranks draw on their own global RNG, as the job seeded it.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from lrkit.data.features import Inputs
from lrkit.data.tensors import TensorData
from lrkit.training import distributed
from lrkit.training.evaluate import LossFn
from lrkit.training.records import TrialPlan
from lrkit.training.running_loss import RunningLoss


@dataclass(frozen=True)
class DataParallel:
    """Rank ``part`` of ``parts`` (this process's, by default) trains its share of a trial
    (a ``training.loop.Sharding``)."""

    part: int = field(default_factory=distributed.rank)
    parts: int = field(default_factory=distributed.world_size)

    def global_plan(self, plan: TrialPlan) -> TrialPlan:
        """``plan`` with ``batch_size`` examples a rank: global batches of ``parts`` times that."""
        return dataclasses.replace(plan, batch_size=plan.batch_size * self.parts)

    def shard(self, x: Inputs, y: torch.Tensor) -> distributed.Shard:
        """This rank's rows of the global batch and their loss's weight."""
        return distributed.shard(x, y, self.part, self.parts)

    def reduce(self, losses: RunningLoss) -> None:
        """The interval's losses averaged over the ranks (a collective)."""
        losses.over_ranks()

    def evaluate(self, model: nn.Module, loss_fn: LossFn, data: TensorData) -> tuple[float, float]:
        """(mean loss, accuracy) over all of ``data``, each rank evaluating its share of it
        on the module DDP wraps (a collective)."""
        return distributed.evaluate_over_ranks(distributed.unwrap(model), loss_fn, data)

    def rng(self, plan: TrialPlan, device: torch.device) -> AbstractContextManager[None]:
        """The rank's global RNG as it is."""
        return nullcontext()
