"""The race's plan (torch-free): successive halving (Jamieson & Talwalkar 2016; Li et al.
2018, Hyperband's inner loop) over the user's budget E.

Every candidate trains to E/6 and the better half, by validation metric there, goes on to
E/2, where the best one wins. Each candidate goes on from its own checkpoint, so a rung costs
only its new epochs:

    cost = n E/6 + ceil(n/2) (E/2 - E/6)   trial-epochs    (2 E for n = 6)

The rungs' places are the race's answer to short-horizon bias (a rate that leads early can
end behind): no candidate is dropped on less than a sixth of the budget, and only the worse
half is dropped there, so a slow starter survives; the winner is picked at half the budget.
Replayed on the benchmark's grids (``bench/suggest_horizon.py``: six consecutive grid lrs
around the best, picked on one seed, scored on the other), this plan picks within noise of
the other seed's best in 89% of the cases on the tuning problems (69% held out), where a
short race that picks at a sixth of the budget does so in 55% (38%), and one that trains all
six to the full budget in 72% (50%) at three times the cost. Ranking the cuts by a forecast
of each curve at the full budget (a power law with a floor) did not pick better than the
measured value (70% at best), so the race ranks by what it measured. A rung that would keep
everyone is skipped. The edge rule (``advise.race``) may add candidates to the first rung,
beyond an end of the ladder; they cost E/6 each, within the driver's limits. With it the same
replay picks within noise in 86% of the cases (62% held out) with the best among the six, and
in 81% (59%) with the best one to three grid steps outside them, where this plan alone
manages 15% (14%).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from lrkit import validation as check

RANGE_TEST_SHARE = 0.25
"""The range test's iterations at most, as a share of one run's steps (unless that is fewer
than ``EXP_LRS[0]`` lrs)."""
EXP_START, EXP_END = 1e-6, 10.0
"""The range test's exponential sweep (``advise.driver``)."""
HOLD = 8
"""Iterations each lr of the range test is held."""
EXP_LRS = (20, 120)
"""The fewest and the most lrs of the range test."""

RUNG_FRACTIONS = (1 / 6, 1 / 2)
"""Where candidates are compared, as fractions of the budget."""
SHORTEST_RUNG = min(b - a for a, b in itertools.pairwise((0.0, *RUNG_FRACTIONS)))
"""The least share of the budget that a rung trains (the first: a sixth)."""
CHECKS_PER_RUNG = 4
"""Checks in each rung's new epochs (the last one decides; the others draw the curve)."""


@dataclass(frozen=True)
class Rung:
    """Train the survivors to ``epochs`` (in all), then keep the best ``keep``."""

    epochs: float
    keep: int

    def eval_every(self, start: float) -> float:
        """Epochs between the checks of this rung, for survivors coming from ``start``."""
        return (self.epochs - start) / CHECKS_PER_RUNG


def race_plan(epochs: float, candidates: int) -> tuple[Rung, ...]:
    """The rungs for ``candidates`` learning rates over ``epochs``; the last keeps one, the
    winner (one candidate races alone to half the budget)."""
    half = Rung(epochs * RUNG_FRACTIONS[1], 1)
    keep = math.ceil(candidates / 2)
    if candidates <= 2 or keep <= 1:
        return (half,)
    return (Rung(epochs * RUNG_FRACTIONS[0], keep), half)


def least_budget(examples: int, batch_size: int) -> float:
    """The least budget (epochs) whose shortest rung trains one optimizer step."""
    return 1 / (SHORTEST_RUNG * math.ceil(examples / batch_size))


def check_budget(epochs: float, examples: int, batch_size: int) -> None:
    """Refuse a budget whose shortest rung trains less than one optimizer step (or whose run
    takes more than ``validation.MAX_STEPS``): such a rung takes its one step anyway and
    ends past the epochs the next rung is to reach, which then cannot run."""
    check.budget_steps(
        "epochs",
        epochs,
        examples,
        batch_size,
        share=SHORTEST_RUNG,
        part=f"the race's first rung (1/{round(1 / SHORTEST_RUNG)} of it)",
    )


def trial_epochs(plan: tuple[Rung, ...], candidates: int) -> float:
    """The epochs of training the plan takes in all, over every candidate."""
    total, start, alive = 0.0, 0.0, candidates
    for rung in plan:
        total += alive * (rung.epochs - start)
        start, alive = rung.epochs, rung.keep
    return total
