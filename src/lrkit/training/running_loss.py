"""The training loss between two checks, in constant memory, for every training loop (the
trial loop, in one process or data-parallel, and the vectorized one).

A check reports, for each trial, the mean training loss of the steps since the previous
check and whether one of them was not finite (the trial diverged at the first such
iteration). Holding every step's loss until the check costs memory in proportion to the
steps between checks, which a long budget makes unbounded; :class:`RunningLoss` keeps two
tensors per loop instead, on the loss's device, so a GPU is not synchronised every step:

    total_k        = sum over the interval's steps t of loss_k(t)            (float64)
    finite_steps_k = #{t : total_k after step t is finite}

A sum stays non-finite once a non-finite term enters it (inf + x = inf, inf - inf = nan,
nan + x = nan) and a sum of float32 losses cannot overflow float64, so ``finite_steps_k`` is
the number of steps before the first non-finite loss: with ``steps`` steps ending at
iteration ``i``, trial k diverged at ``i - steps + finite_steps_k + 1`` when
``finite_steps_k < steps``, and its mean loss is ``total_k / steps``. Loops that are compared
with each other add the same float32 losses in the same order, so their means are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lrkit.training import distributed


@dataclass(frozen=True)
class IntervalLoss:
    """What a check reads of the steps since the previous one, one entry per trial."""

    mean: tuple[float, ...]
    """The mean training loss of the interval's steps (not finite for a diverged trial)."""
    diverged_at: tuple[int | None, ...]
    """The first iteration whose loss was not finite; None when all were."""


class RunningLoss:
    """The running sum of ``trials`` trials' training losses since the last check, and
    their steps before the first non-finite one (the module's formulas)."""

    def __init__(self, trials: int, device: torch.device) -> None:
        self.device = device
        self.total = torch.zeros(trials, dtype=torch.float64, device=device)
        self.finite_steps = torch.zeros(trials, dtype=torch.int64, device=device)
        self.steps = 0

    def add(self, losses: torch.Tensor) -> None:
        """One step's loss of each trial (a 0-dim tensor when there is one trial)."""
        self.total.add_(losses.detach())
        self.finite_steps.add_(torch.isfinite(self.total))
        self.steps += 1

    def over_ranks(self) -> None:
        """Make the interval the mean over the ranks of a data-parallel job (a collective:
        every rank calls it): the ranks' mean total, and the fewest finite steps, since a
        step whose loss is not finite on one rank has a mean that is not finite."""
        self.total = distributed.mean_tensor_over_ranks(self.total)
        self.finite_steps = distributed.min_tensor_over_ranks(self.finite_steps)

    def read(self, iteration: int) -> IntervalLoss:
        """The interval that ended at ``iteration`` (one synchronisation with the device)."""
        mean = (self.total / self.steps).tolist()
        first = iteration - self.steps + 1
        diverged_at = tuple(
            None if finite == self.steps else first + finite
            for finite in self.finite_steps.tolist()
        )
        return IntervalLoss(tuple(mean), diverged_at)

    def restart(self, trials: int) -> None:
        """Begin the next interval, for ``trials`` trials (fewer after some diverged)."""
        self.total = torch.zeros(trials, dtype=torch.float64, device=self.device)
        self.finite_steps = torch.zeros(trials, dtype=torch.int64, device=self.device)
        self.steps = 0
