"""The user's recipe over a budget (torch-free): a linear warm-up over the first share of the
run, then a schedule whose length is the rest of it, so that the whole program ends where the
budget does (a cosine reaches its floor at the last step).

For a budget of N iterations, a warm-up share w and a peak lr eta:

    W = round(w N)   (at least 1 where w > 0)
    lr(t) = eta t / W                    for t < W          (Goyal et al. 2017, from 0)
    lr(t) = s(t - W)                     after, s the schedule with base_lr (or max_lr) eta
                                         and max_iter N - W (where it takes one)

As Hugging Face's ``get_cosine_schedule_with_warmup`` counts the cosine after the warm-up.
The schedule is spelled as ``lrkit sweep --schedule`` takes it, ``NAME[:k=v,...]``; the
Python API also takes a factory ``(peak lr, iterations) -> Schedule``
(:data:`ScheduleFactory`), which then owns the whole length it is given. The peak lr is the
learning rate a range test proposes and a race compares: the advised lr is the recipe's
peak.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lrkit import validation as check
from lrkit.errors import LrkitValueError
from lrkit.schedules.base import Schedule
from lrkit.schedules.compose import warmup as with_warmup
from lrkit.schedules.spec import Filled, lr_schedule_for_option

ScheduleFactory = Callable[[float, int], Schedule]
"""(peak lr, iterations) -> lr(t): a schedule over that many iterations peaking at that lr."""

CHECK_ITERATIONS = 1000
"""The length a recipe is built at once to check it before any training."""


@dataclass(frozen=True)
class Recipe:
    """How a run moves its learning rate over the budget: a warm-up, then a schedule.

    Args:
        schedule: ``NAME[:k=v,...]`` as ``lrkit sweep --schedule`` takes it (base_lr and
            max_iter come from the recipe), or None for a constant lr.
        warmup: the share of the budget warmed up linearly from 0, in [0, 1).
        factory: the Python API's form instead of ``schedule``: ``(peak, iterations) ->
            Schedule``.
    """

    schedule: str | None = None
    warmup: float = 0.0
    factory: ScheduleFactory | None = None

    def __post_init__(self) -> None:
        check.float_in("warmup", self.warmup, 0.0, 1.0, low_open=False, high_open=True)
        if self.schedule is not None and self.factory is not None:
            raise LrkitValueError("give the schedule as a name or as a factory, not both")
        if self.factory is not None and not callable(self.factory):
            raise LrkitValueError(
                f"schedule factory must be callable (peak lr, iterations) -> Schedule, got "
                f"{type(self.factory).__name__}"
            )

    @property
    def constant(self) -> bool:
        """Whether the lr is the same at every step (no schedule, no warm-up)."""
        return self.schedule is None and self.factory is None and self.warmup == 0.0

    def warmup_iterations(self, iterations: int) -> int:
        """W = round(w N), at least 1 where w > 0 (and below N)."""
        if self.warmup == 0.0:
            return 0
        return min(max(round(self.warmup * iterations), 1), max(iterations - 1, 1))

    def build(self, peak: float, iterations: int) -> Schedule | None:
        """lr(t) over ``iterations`` peaking at ``peak``; None for a constant lr."""
        if self.constant:
            return None
        warm = self.warmup_iterations(iterations)
        rest = max(iterations - warm, 1)
        main: Schedule
        if self.factory is not None:
            main = self.factory(peak, rest)
        elif self.schedule is not None:
            main = lr_schedule_for_option(
                "--schedule",
                self.schedule,
                rate=Filled(peak, "the candidate's lr (the recipe's peak)"),
                defaults={"max_iter": rest},
            )
        else:
            main = _flat(peak)
        return with_warmup(main, warm) if warm else main

    def check(self) -> None:
        """Build the recipe once, so a bad schedule or parameter is refused before training."""
        built = self.build(1.0, CHECK_ITERATIONS)
        if built is not None:
            value = built(CHECK_ITERATIONS // 2)
            if not isinstance(value, (int, float)):
                raise LrkitValueError(
                    f"the schedule factory's schedule returned {type(value).__name__}, not a number"
                )

    def label(self) -> str:
        """The recipe in words: ``cosine after a 5% warm-up``, ``constant``."""
        name = self.schedule or ("a schedule of the caller's" if self.factory else "constant")
        if self.warmup:
            return f"{name} after a {100 * self.warmup:.3g}% warm-up"
        return name

    def to_json(self) -> dict[str, object]:
        return {
            "schedule": self.schedule
            if self.factory is None
            else getattr(self.factory, "__name__", "factory"),
            "warmup": self.warmup,
        }


def _flat(lr: float) -> Schedule:
    def schedule(t: int) -> float:
        return lr

    return schedule
