"""The learning rates a race starts with (torch-free): every rule's suggestion from the range
test, and a geometric ladder around the default rule's, merged where two are within a factor
``MERGE_RATIO`` of each other.

Each rule reads the curve its own way (``rangetest.suggestions``) and each is right on some
kinds of problems; the ladder covers the stretch between them, below the turn where a fixed
learning rate trains best, so that the race has the right answer among its candidates even
where no rule names it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lrkit.errors import LrkitValueError

LADDER = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0)
"""Factors of the default rule's learning rate (``turning_point``: half the turn, so the
ladder runs from a sixteenth of the turn to the turn itself)."""

MERGE_RATIO = 1.3
"""Two candidates closer than this factor are one (the one named first is kept)."""

RULE_ORDER = ("turning_point", "valley", "steepest", "minimum")
"""Which rule's suggestion is the ladder's centre when the default gives none."""


@dataclass(frozen=True)
class Candidate:
    """A learning rate to race, and where it came from (``"turning_point"``,
    ``"ladder x0.25"``, ...)."""

    lr: float
    sources: tuple[str, ...]


def candidate_lrs(
    suggestions: Mapping[str, float | None],
    default: str = "turning_point",
    limit: int = 6,
    ladder: Sequence[float] = LADDER,
) -> tuple[Candidate, ...]:
    """At most ``limit`` candidates, in increasing lr: the ladder around the ``default``
    rule's suggestion (or, where it gave none, the first rule of ``RULE_ORDER`` that gave one),
    and every rule's suggestion, merged within ``MERGE_RATIO``. When more than ``limit``
    remain, the ladder's rungs nearest its centre and the rules' suggestions are kept first."""
    found = {r: lr for r, lr in suggestions.items() if lr is not None and math.isfinite(lr)}
    if any(lr <= 0 for lr in found.values()):
        raise LrkitValueError("suggested learning rates must be > 0")
    centre_rule = default if default in found else next((r for r in RULE_ORDER if r in found), None)
    if centre_rule is None:
        raise LrkitValueError(
            "the range test suggests no learning rate (the loss never fell, or was never "
            "finite): check the model, the data and the loss, or widen the program"
        )
    centre = found[centre_rule]
    # Priority: the centre, the rules, then the ladder from its centre outwards.
    named: list[tuple[float, str]] = [(centre, centre_rule)]
    named += [(lr, rule) for rule, lr in found.items() if rule != centre_rule]
    outward = sorted(ladder, key=lambda f: (abs(math.log(f)), f))
    named += [(centre * f, f"ladder x{f:g}") for f in outward if f != 1.0]
    kept: list[Candidate] = []
    for lr, source in named:
        near = next((c for c in kept if max(c.lr, lr) / min(c.lr, lr) < MERGE_RATIO), None)
        if near is not None:
            kept[kept.index(near)] = Candidate(near.lr, (*near.sources, source))
        elif len(kept) < limit:
            kept.append(Candidate(lr, (source,)))
    return tuple(sorted(kept, key=lambda c: c.lr))
