"""The schedule of a training run, shared by every training loop (the trial loop, in one
process or data-parallel, and the vectorized engine): which examples each step reads, when a
check falls, and when the run ends.

- Each epoch reads a fresh permutation of the training set, drawn from a generator seeded
  with the run's seed, one draw per epoch, cut into batches of the epoch's batch size (the
  last batch of an epoch may be partial). Several seeds (the repeats of a stack) read their
  own permutations in lockstep, one row each.
- A check falls at the first step at or past each multiple of ``eval_every`` epochs, and at
  the last step, the one at which ``epochs`` are done (``epochs`` may be fractional).
- A run can stop at any step and go on later from its :class:`Position`: the generator is
  seeded again and draws as many permutations as whole epochs passed, which gives exactly the
  order the run would have read, so a run continued from a position takes the same steps as
  one that never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from lrkit.schedules.batch_size import BatchSizeSchedule

TOLERANCE = 1e-9
"""Progress within this of a check (or of the end) counts as reaching it."""


@dataclass(frozen=True)
class Position:
    """Where a run stands between two steps: everything needed to go on exactly."""

    iteration: int = 0
    """Steps taken."""
    epoch: int = 0
    """The epoch being read (the number of whole epochs done)."""
    batch: int = 0
    """Batches of that epoch already read."""
    progress: float = 0.0
    """Epochs done (fractional)."""
    next_check: float | None = None
    """Progress at which the next check falls (None: the first, at ``eval_every``)."""


class ClockStep(NamedTuple):
    """One step: what it reads and whether a check follows it."""

    iteration: int
    """Steps taken, this one included."""
    progress: float
    """Epochs done after this step."""
    examples: torch.Tensor
    """(seeds, batch size) indices of the examples this step reads, a row per seed."""
    check: bool
    """A check (loss since the last one, evaluation, divergence test) follows this step."""
    last: bool
    """The run has done its epochs after this step."""


class Clock:
    """Iterate over a run's steps; ``position`` says where the run stands after the step
    last handed out (or at ``start`` before the first)."""

    def __init__(
        self,
        n: int,
        epochs: float,
        eval_every: float,
        batch_size: int,
        seeds: Sequence[int],
        device: torch.device,
        batch_size_schedule: BatchSizeSchedule | None = None,
        start: Position | None = None,
    ) -> None:
        self.n, self.epochs, self.eval_every = n, epochs, eval_every
        self.batch_size, self.batch_size_schedule = batch_size, batch_size_schedule
        self.seeds, self.device = list(seeds), device
        self._start = start or Position(next_check=eval_every)
        self._at: tuple[int, int, int, int, float, float] | None = None
        if self._start.progress >= epochs - TOLERANCE and self._start.iteration > 0:
            raise ValueError(
                f"the run is already at epoch {self._start.progress:g}, not before {epochs:g}"
            )

    @property
    def position(self) -> Position:
        """Where the run stands after the step last handed out (at the start before any)."""
        if self._at is None:
            return self._start
        iteration, epoch, batches_read, batches, progress, next_check = self._at
        if batches_read == batches:  # the epoch is done
            return Position(iteration, epoch + 1, 0, progress, next_check)
        return Position(iteration, epoch, batches_read, progress, next_check)

    def batch_size_at(self, epoch: int) -> int:
        """The batch size read in ``epoch``."""
        schedule = self.batch_size_schedule
        return schedule(epoch) if schedule is not None else self.batch_size

    def __iter__(self) -> Iterator[ClockStep]:
        at = self._start
        generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        for _ in range(at.epoch):  # the orders of the epochs already read
            for generator in generators:
                torch.randperm(self.n, generator=generator)
        iteration, epoch, skip = at.iteration, at.epoch, at.batch
        next_check = at.next_check if at.next_check is not None else self.eval_every
        while epoch < self.epochs:
            size = self.batch_size_at(epoch)
            orders = torch.stack([torch.randperm(self.n, generator=g) for g in generators])
            orders = orders.to(self.device)
            starts = range(0, self.n, size)
            for b in range(skip, len(starts)):
                iteration += 1
                progress = epoch + (b + 1) / len(starts)
                last = progress >= self.epochs - TOLERANCE
                check = last or progress >= next_check - TOLERANCE
                while check and next_check <= progress + TOLERANCE:
                    next_check += self.eval_every
                self._at = (iteration, epoch, b + 1, len(starts), progress, next_check)
                yield ClockStep(
                    iteration, progress, orders[:, starts[b] : starts[b] + size], check, last
                )
                if last:
                    return
            skip = 0
            epoch += 1
