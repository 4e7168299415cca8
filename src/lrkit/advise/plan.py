"""The race's plan (torch-free): successive halving (Jamieson & Talwalkar 2016; Li et al.
2018, Hyperband's inner loop) over the user's budget E.

Every candidate trains to E/6; the better half (by its forecast at E, ``predict``) goes on to
E/2; the best ``finalists`` of those go on to E, where their measured values decide. Each
candidate goes on from its own checkpoint, so a rung costs only its new epochs:

    cost = n E/6 + ceil(n/2) (E/2 - E/6) + finalists (E - E/2)   trial-epochs

for n = 6 and 2 finalists, 3 E of training, which two worker processes run in about
1.7 E of wall time (a rung's trials side by side), and the vectorized engine in less. With
one process and no stacking, one finalist (2.5 E). A rung that would keep everyone is
skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RUNG_FRACTIONS = (1 / 6, 1 / 2)
"""Where candidates are compared before the end, as fractions of the budget."""
CHECKS_PER_RUNG = 8
"""Checks in each rung's new epochs: enough points for the forecast at the first rung."""


@dataclass(frozen=True)
class Rung:
    """Train the survivors to ``epochs`` (in all), then keep the best ``keep`` (0: the end)."""

    epochs: float
    keep: int

    def eval_every(self, start: float) -> float:
        """Epochs between the checks of this rung, for survivors coming from ``start``."""
        return (self.epochs - start) / CHECKS_PER_RUNG


def race_plan(epochs: float, candidates: int, finalists: int) -> tuple[Rung, ...]:
    """The rungs for ``candidates`` learning rates over ``epochs``, ending with ``finalists``
    measured at the full budget (all of them when there are no more)."""
    rungs = []
    alive = candidates
    keeps = (max(finalists, math.ceil(candidates / 2)), finalists)
    for fraction, keep in zip(RUNG_FRACTIONS, keeps, strict=True):
        if keep < alive:
            rungs.append(Rung(epochs * fraction, keep))
            alive = keep
    return (*rungs, Rung(epochs, 0))


def trial_epochs(plan: tuple[Rung, ...], candidates: int) -> float:
    """The epochs of training the plan takes in all, over every candidate."""
    total, start, alive = 0.0, 0.0, candidates
    for rung in plan:
        total += alive * (rung.epochs - start)
        start, alive = rung.epochs, rung.keep
    return total
