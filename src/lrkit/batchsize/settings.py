"""What the batch-size advice is for: the budget (a target, a wall time, or epochs), the
sizes it may consider, and the learning-rate race it runs at each (torch-free, checked when
made, so the CLI checks its options before torch loads)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lrkit import validation as check
from lrkit.advise.settings import CEILING_METHODS, AdviseSettings
from lrkit.batchsize.model import MODES
from lrkit.errors import InvalidParameterError

MAX_BATCH_SIZE = 2**20
"""The largest batch size considered at all."""
DEFAULT_MIN_BATCH_SIZE = 8
"""The smallest batch size considered unless told otherwise."""
MAX_TIME = 1e7
"""The longest time budget, in seconds (about 16 weeks): advise trains each of its three
races for up to three times the epochs that time allows, so a longer budget is no run it
can advise on by racing."""


@dataclass(frozen=True)
class CeilingSettings:
    """How the largest batch that fits is found (``batchsize.ceiling``), and between which
    sizes.

    Args:
        method: auto (probe on CUDA, the memory model elsewhere), probe or memory.
        memory: bytes the memory model may assume training uses (default: half the
            available memory).
        start: the first size the probe tries (it doubles from there).
        limit: the largest size considered (default: the training examples).
    """

    method: str = "auto"
    memory: int | None = None
    start: int = DEFAULT_MIN_BATCH_SIZE
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.method not in CEILING_METHODS:
            raise ValueError(
                f"method must be one of {', '.join(CEILING_METHODS)}, got {self.method!r}"
            )


@dataclass(frozen=True)
class BatchSettings:
    """The budget and the search.

    Args:
        mode: target (reach ``target`` in the least wall time), time (the best metric in
            ``time`` seconds of training), or epochs (the best metric after ``race.epochs``
            epochs: the examples are fixed).
        target: the validation metric to reach (mode target): an accuracy in (0, 1], or a
            loss > 0.
        time: seconds of training (mode time).
        min_batch_size: the smallest candidate; the others double from it.
        max_batch_size: the largest candidate at most (default: the ceiling, and no more
            than an eighth of the training examples).
        race: the learning-rate race run at each batch size raced (its batch size is
            replaced, and it trains whole: every size raced fits; its epochs are the budget
            in modes epochs and target, where a race decides at half of them). Its
            ``memory`` and ``ceiling`` say how the largest batch that fits is found.
    """

    mode: str = "epochs"
    target: float | None = None
    time: float | None = None
    min_batch_size: int = DEFAULT_MIN_BATCH_SIZE
    max_batch_size: int | None = None
    race: AdviseSettings = field(default_factory=AdviseSettings)

    def __post_init__(self) -> None:
        check.choice("mode", self.mode, MODES)
        if self.mode == "target" and self.target is None:
            raise InvalidParameterError("target", "a validation metric to reach", None)
        if self.mode == "time" and self.time is None:
            raise InvalidParameterError("time", "seconds of training, > 0", None)
        if self.target is not None:
            check.positive_float("target", self.target)
        if self.time is not None:
            check.float_in(
                "time", self.time, 0.0, MAX_TIME, low_open=True, high_open=False, why="seconds"
            )
        check.int_in("min_batch_size", self.min_batch_size, 1, MAX_BATCH_SIZE)
        if self.max_batch_size is not None:
            check.int_in("max_batch_size", self.max_batch_size, self.min_batch_size, MAX_BATCH_SIZE)

    def race_at(self, batch_size: int, epochs: float) -> AdviseSettings:
        """The race's settings at ``batch_size`` for ``epochs``."""
        return dataclasses.replace(
            self.race, batch_size=batch_size, epochs=epochs, accumulation_steps=1
        )
