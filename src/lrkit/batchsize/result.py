"""What the batch-size advice found (torch-free): frozen dataclasses that serialise to the
CLI's JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lrkit.advise.micro import MicroBatching
from lrkit.advise.result import Advice
from lrkit.batchsize.model import BatchPrediction


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Ceiling:
    """The largest batch size that fits, and how it was found (``batchsize.ceiling``)."""

    batch_size: int
    method: str
    """probe or memory."""
    limit: int
    """The largest size considered (the cap given, or the training examples)."""
    tried: tuple[tuple[int, bool], ...] = ()
    """probe: every size tried, in order, and whether it fitted."""
    memory_bytes: int | None = None
    """memory: the bytes assumed available to training."""
    fixed_bytes: int | None = None
    """memory: parameters, gradients, optimizer state and what the graph keeps whatever the
    batch."""
    example_bytes: float | None = None
    """memory: the estimated peak per example."""

    def fits(self, batch_size: int) -> bool:
        return batch_size <= self.batch_size

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "method": self.method,
            "limit": self.limit,
            "tried": [[size, ok] for size, ok in self.tried],
            "memory_bytes": self.memory_bytes,
            "fixed_bytes": self.fixed_bytes,
            "example_bytes": self.example_bytes,
        }


@dataclass(frozen=True)
class NoiseMeasurement:
    """The gradient noise scale where it was read (``lrkit.noise``; ``batchsize.driver``)."""

    b_noise: float
    """B_simple, smoothed, at the measurement read."""
    stderr: float
    """Its jackknife standard error."""
    batch_size: int
    lr: float
    epochs: float
    """The epochs trained when it was read."""
    estimator: str
    seconds: float
    reached_target: bool | None = None
    """Mode target: whether the noise run's validation curve had reached the target where
    it was read (False: read at the run's end, short of it); None without a target."""

    def where(self) -> str:
        """Where it was read, in words."""
        where = f"after {self.epochs:.3g} epochs"
        if self.reached_target is True:
            return where + ", where its validation reached the target"
        if self.reached_target is False:
            return where + ", its end, short of the target"
        return where

    def to_json(self) -> dict[str, Any]:
        return {
            "b_noise": _finite(self.b_noise),
            "stderr": _finite(self.stderr),
            "batch_size": self.batch_size,
            "lr": self.lr,
            "epochs": self.epochs,
            "estimator": self.estimator,
            "seconds": self.seconds,
            "reached_target": self.reached_target,
        }


@dataclass(frozen=True)
class RacedBatch:
    """The learning-rate race at one batch size, and how its winner did by the budget."""

    batch_size: int
    epochs: float
    """The race's budget at this size (mode time: the epochs the wall time allows)."""
    steps_per_epoch: int
    advice: Advice
    lr: float
    """The lr advised at this size: the race's advice, or in mode target the candidate that
    reached the target first."""
    epochs_to_target: float | None = None
    """Mode target: the epoch at which that lr first reached the target (None: no candidate
    did within the race)."""
    seconds_to_target: float | None = None
    """That, in training wall time at the measured step time."""
    projected: bool = False
    """Mode target: no candidate reached the target within the race, and the epoch is where
    the trend of that lr's curve reaches it (``batchsize.crossing``), not a measurement."""

    @property
    def value(self) -> float:
        return self.advice.value

    @property
    def value_std(self) -> float:
        winner = next(c for c in self.advice.candidates if c.lr == self.advice.raced_lr)
        return winner.value_std

    @property
    def curve_lr(self) -> float:
        """The raced lr whose curve stands for this size: the one that reached the target
        first, else the race's winner."""
        return self.lr if self.epochs_to_target is not None else self.advice.raced_lr

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "lr": self.lr,
            "value": _finite(self.value),
            "value_std": _finite(self.value_std),
            "epochs_to_target": self.epochs_to_target,
            "seconds_to_target": self.seconds_to_target,
            "projected": self.projected,
            "advice": self.advice.to_json(),
        }


@dataclass(frozen=True)
class BatchAdvice:
    """The batch size and learning rate advised for the budget, with the evidence."""

    batch_size: int
    lr: float
    metric: str
    mode: str
    reason: str
    """One sentence: why this batch size."""
    predicted: int
    """The model's choice before the race (``batchsize.model``)."""
    noise: NoiseMeasurement
    ceiling: Ceiling
    predictions: tuple[BatchPrediction, ...]
    races: tuple[RacedBatch, ...]
    epochs: float
    target: float | None
    time_budget: float | None
    seconds: float
    predicted_seconds: tuple[tuple[int, float], ...] = ()
    """Mode target: the predicted training time to the target at every candidate that fits,
    calibrated on the chosen size's measured time (S_min from its steps)."""
    model: str = ""
    data: str = ""

    def budget(self) -> str:
        """The budget as the person gave it."""
        if self.mode == "target":
            return (
                f"reach validation {self.metric} {self.target:g} soonest (races of "
                f"{self.epochs:g} epochs, deciding at half)"
            )
        if self.mode == "time":
            return f"the best validation {self.metric} in {self.time_budget:g} s of training"
        return f"the best validation {self.metric} in {self.epochs:g} epochs"

    def outcome(self, batch_size: int) -> str:
        """How the race at ``batch_size`` did (value ± noise; for a target, the time to it),
        or blank where that size was not raced."""
        race = next((r for r in self.races if r.batch_size == batch_size), None)
        if race is None:
            return ""
        text = f"{race.value:.4f}"
        if math.isfinite(race.value_std):
            text += f" ± {race.value_std:.4f}"
        if self.mode == "target":
            reached = race.seconds_to_target
            if reached is None:
                text += ", not reached"
            else:
                text += f", {reached:.3g} s" + (" projected" if race.projected else "")
        return text

    @property
    def chosen(self) -> RacedBatch:
        return next(r for r in self.races if r.batch_size == self.batch_size)

    @property
    def micro_batching(self) -> MicroBatching:
        """How the chosen batch trains in memory: whole (every size raced fits)."""
        b = self.batch_size
        return MicroBatching(b, b, 1, self.ceiling.batch_size, self.ceiling.method)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            **self.micro_batching.to_json(),
            "lr": self.lr,
            "metric": self.metric,
            "mode": self.mode,
            "reason": self.reason,
            "predicted_batch_size": self.predicted,
            "epochs": self.epochs,
            "target": self.target,
            "time": self.time_budget,
            "noise_scale": self.noise.to_json(),
            "ceiling": self.ceiling.to_json(),
            "batch_sizes": [p.to_json() for p in self.predictions],
            "predicted_seconds_to_target": [[b, s] for b, s in self.predicted_seconds],
            "races": [r.to_json() for r in self.races],
            "candidates": self.chosen.advice.to_json()["candidates"],
            "seconds": self.seconds,
            "model": self.model,
            "data": self.data,
        }
