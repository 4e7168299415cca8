"""The learning rates a race starts with (torch-free): a geometric ladder around the default
rule's suggestion, and every other rule's suggestion within ``REACH`` of it, merged where two
are within a factor ``MERGE_RATIO`` of each other.

The ladder runs from half the default (``turning_point``: half the lr where the loss turned)
to four times it, a factor 2 apart: on the benchmark's tuning problems the best fixed lr lay
between 0.38 and 4.4 times that suggestion (``bench/bench_suggest.py``), so the ladder has a
rung within a factor sqrt 2 of it wherever it fell. A rule's suggestion far from the default
(valley and minimum read the long flat stretch of an exponential sweep, often two decades or
more below it) would spend a candidate where no fixed lr trains best; such suggestions are
reported, not raced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lrkit.errors import LrkitValueError

LADDER = (1 / 2, 1.0, 2.0, 4.0)
"""Factors of the default rule's learning rate."""

MERGE_RATIO = 1.3
"""Two candidates closer than this factor are one (the one named first is kept)."""

REACH = 16.0
"""A rule's suggestion races when it is within this factor of the default's."""

RULE_ORDER = ("turning_point", "valley", "steepest", "minimum")
"""Which rule's suggestion is the ladder's centre when the default gives none."""


@dataclass(frozen=True)
class Candidate:
    """A learning rate to race, and where it came from (``"turning_point"``,
    ``"ladder x2"``, ...)."""

    lr: float
    sources: tuple[str, ...]


def candidate_lrs(
    suggestions: Mapping[str, float | None],
    default: str = "turning_point",
    limit: int = 6,
    ladder: Sequence[float] = LADDER,
) -> tuple[tuple[Candidate, ...], tuple[tuple[str, float], ...]]:
    """At most ``limit`` candidates, in increasing lr, and the rules left out (too far from
    the centre). The centre is the ``default`` rule's suggestion (or, where it gave none, the
    first rule of ``RULE_ORDER`` that gave one); then the ladder around it, from the centre
    outwards, then the other rules' suggestions within ``REACH``, merged within
    ``MERGE_RATIO``; past ``limit``, the later ones are dropped."""
    found = {r: lr for r, lr in suggestions.items() if lr is not None and math.isfinite(lr)}
    if any(lr <= 0 for lr in found.values()):
        raise LrkitValueError("suggested learning rates must be > 0")
    centre_rule = default if default in found else next((r for r in RULE_ORDER if r in found), None)
    if centre_rule is None:
        raise LrkitValueError(
            "the range test suggests no learning rate (the loss never fell, or was never "
            "finite): check the model, the data and the loss"
        )
    centre = found[centre_rule]
    named: list[tuple[float, str]] = [(centre, centre_rule)]
    outward = sorted((f for f in ladder if f != 1.0), key=lambda f: (abs(math.log(f)), f))
    named += [(centre * f, f"ladder x{f:g}") for f in outward]
    left_out = []
    for rule, lr in found.items():
        if rule == centre_rule:
            continue
        if max(lr, centre) / min(lr, centre) > REACH:
            left_out.append((rule, lr))
        else:
            named.append((lr, rule))
    kept: list[Candidate] = []
    for lr, source in named:
        near = next((c for c in kept if max(c.lr, lr) / min(c.lr, lr) < MERGE_RATIO), None)
        if near is not None:
            kept[kept.index(near)] = Candidate(near.lr, (*near.sources, source))
        elif len(kept) < limit:
            kept.append(Candidate(lr, (source,)))
    return tuple(sorted(kept, key=lambda c: c.lr)), tuple(left_out)
