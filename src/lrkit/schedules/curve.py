"""Sampling a schedule into a result that serialises to the CLI's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lrkit import validation as check
from lrkit.schedules.base import Schedule

ParamValue = float | int | str | bool | tuple[int, ...] | None


@dataclass(frozen=True)
class ScheduleCurve:
    """A schedule's learning rate at iterations 0, every, 2*every, ... below ``iters``."""

    name: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    iterations: tuple[int, ...] = ()
    lrs: tuple[float, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}, "points": [{"iteration": i, "lr": x}, ...]}``."""
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        points = [
            {"iteration": i, "lr": lr} for i, lr in zip(self.iterations, self.lrs, strict=True)
        ]
        return {"name": self.name, "params": params, "points": points}


def sample(
    schedule: Schedule,
    iters: int,
    every: int = 1,
    *,
    name: str = "schedule",
    params: Mapping[str, ParamValue] | None = None,
) -> ScheduleCurve:
    """Evaluate ``schedule`` at iterations 0, every, 2*every, ... below ``iters``."""
    iters = check.positive_int("iters", iters)
    every = check.positive_int("every", every)
    iterations = tuple(range(0, iters, every))
    return ScheduleCurve(
        name, dict(params or {}), iterations, tuple(schedule(t) for t in iterations)
    )
