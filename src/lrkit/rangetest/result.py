"""Results of a range test: frozen dataclasses that serialise to the CLI's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lrkit.rangetest.core import RoundRecord
from lrkit.rangetest.suggestions import TurningPoint
from lrkit.sweep.engines.names import SEQUENTIAL


@dataclass(frozen=True)
class RoundResult:
    """One round: what was measured and what its curve suggests."""

    record: RoundRecord
    curve: str
    """Which loss the suggestions read: eval or mean (per hold), or smoothed (per iteration)."""
    curve_lrs: tuple[float, ...]
    curve_losses: tuple[float, ...]
    suggestions: Mapping[str, float | None]
    turning_point: TurningPoint | None
    repeats: tuple[RoundRecord, ...] = ()
    """The records of repeats 2, 3, ... (``record`` is the first's); the curve is their mean."""

    @property
    def records(self) -> tuple[RoundRecord, ...]:
        """Every repeat's record, the first first."""
        return (self.record, *self.repeats)

    def to_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "program": record.program,
            "focus": record.focus,
            "points": [
                {
                    "iteration": p.iteration,
                    "lr": p.lr,
                    "loss": p.loss,
                    "smoothed_loss": p.smoothed_loss,
                }
                for p in record.points
            ],
            "holds": [
                {
                    "lr": h.lr,
                    "mean_loss": h.mean_loss,
                    "eval_loss": h.eval_loss,
                    "complete": h.complete,
                }
                for h in record.holds
            ],
            "curve": self.curve,
            "curve_lrs": list(self.curve_lrs),
            "curve_losses": list(self.curve_losses),
            "repeats": [
                {
                    "holds": [
                        {"lr": h.lr, "mean_loss": h.mean_loss, "eval_loss": h.eval_loss}
                        for h in r.holds
                    ],
                    "diverged_at": r.diverged_at,
                    "stop_reason": r.stop_reason,
                }
                for r in self.repeats
            ],
            "suggestions": dict(self.suggestions),
            "turning_point": None if self.turning_point is None else self.turning_point.lr,
            "diverged_at": record.diverged_at,
            "stop_reason": record.stop_reason,
        }


@dataclass(frozen=True)
class RangeTestResult:
    """The whole test: every round, the suggestions and the one suggested lr.

    ``suggestions`` takes steepest, minimum and valley from the first (widest) round, where
    those rules are meant to read, and turning_point from the last (finest) round that found
    one.
    """

    model: str
    data: str
    batch_size: int
    device: str
    rounds: tuple[RoundResult, ...]
    suggestions: Mapping[str, float | None]
    method: str
    suggested_lr: float | None
    seconds: float
    repeats: int = 1
    engine: str = SEQUENTIAL
    """The engine that ran the rounds: vectorized or sequential."""
    engine_reason: str | None = None
    """Why the vectorized engine was not used, when it was asked for (or auto)."""
    suggested_lr_by_repeat: tuple[float | None, ...] = ()
    """With repeats, each repeat's own suggestion by ``method``."""
    world_size: int = 1
    """Processes of a data-parallel (DDP) run; ``batch_size`` is then the global batch."""

    @property
    def suggested_or_least(self) -> float | None:
        """``suggested_lr``, else the least lr any rule suggested (a safe side to err on);
        None where no rule suggested one (the loss never fell)."""
        if self.suggested_lr is not None:
            return self.suggested_lr
        return min((lr for lr in self.suggestions.values() if lr is not None), default=None)

    @property
    def diverged_at(self) -> float | None:
        """Where the first round diverged (the wide sweep), or None."""
        return self.rounds[0].record.diverged_at

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "batch_size": self.batch_size,
            "device": self.device,
            "rounds": [r.to_json() for r in self.rounds],
            "suggestions": dict(self.suggestions),
            "method": self.method,
            "suggested_lr": self.suggested_lr,
            "diverged_at": self.diverged_at,
            "seconds": self.seconds,
            "repeats": self.repeats,
            "engine": self.engine,
            "engine_reason": self.engine_reason,
            "suggested_lr_by_repeat": list(self.suggested_lr_by_repeat),
            "world_size": self.world_size,
        }
