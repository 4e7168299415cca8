"""Reading a range test's rounds (torch-free): which curve the rules read, the mean curve
over repeats, the suggestions of a whole test, and where a round's turn lies in its program."""

from __future__ import annotations

import math

from lrkit.rangetest.core import RoundRecord
from lrkit.rangetest.programs import LrProgram
from lrkit.rangetest.result import RoundResult
from lrkit.rangetest.suggestions import find_turning_point, suggest_all


def combine_rounds(results: list[RoundResult]) -> dict[str, float | None]:
    """steepest, minimum and valley read the widest round; the turning point the finest round
    that found one (a narrow round can end with the loss still falling)."""
    suggestions = dict(results[0].suggestions)
    with_turn = [r for r in results if r.turning_point is not None]
    suggestions["turning_point"] = with_turn[-1].suggestions["turning_point"] if with_turn else None
    return suggestions


def curve_of(record: RoundRecord, curve: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """The (kind, lrs, losses) the suggestions read. A hold cut short by divergence appears
    as a non-finite loss, so the rules see that the curve rose there."""
    holds = record.holds
    if curve == "auto":
        if any(h.eval_loss is not None for h in holds):
            curve = "eval"
        elif holds and max(h.iterations for h in holds) > 1:
            curve = "mean"
        else:
            curve = "smoothed"
    if curve == "smoothed":
        points = record.points
        lrs = tuple(p.lr for p in points)
        losses = tuple(p.smoothed_loss for p in points)
        if record.diverged_at is not None and points:
            losses = (*losses[:-1], math.inf)
        return curve, lrs, losses
    lrs = tuple(h.lr for h in holds)
    if curve == "eval":
        losses = tuple(
            h.eval_loss if h.complete and h.eval_loss is not None else math.inf for h in holds
        )
    else:
        losses = tuple(h.mean_loss if h.complete else math.inf for h in holds)
    return curve, lrs, losses


def read_round(records: list[RoundRecord], curve: str) -> RoundResult:
    """The round's curve: the mean over repeats, hold by hold (or iteration by iteration);
    where any repeat diverged the curve is inf, so the rules see it rise there."""
    longest = max(records, key=lambda r: len(r.points))
    kind = curve_of(longest, curve)[0]
    curves = [curve_of(record, kind) for record in records]
    lrs = max((c[1] for c in curves), key=len)
    losses = tuple(
        math.fsum(values) / len(values) if all(math.isfinite(v) for v in values) else math.inf
        for values in (
            [c[2][i] if i < len(c[2]) else math.inf for c in curves] for i in range(len(lrs))
        )
    )
    return RoundResult(
        record=records[0],
        repeats=tuple(records[1:]),
        curve=kind,
        curve_lrs=lrs,
        curve_losses=losses,
        suggestions=suggest_all(lrs, losses),
        turning_point=find_turning_point(lrs, losses),
    )


def program_index(program: LrProgram, round_result: RoundResult, curve_index: int) -> int:
    """The index in ``program.lrs`` of the curve's ``curve_index``-th point (the smoothed
    curve has a point per iteration, the others a point per hold)."""
    lr = round_result.curve_lrs[curve_index]
    return min(range(len(program.lrs)), key=lambda i: abs(program.lrs[i] - lr))
