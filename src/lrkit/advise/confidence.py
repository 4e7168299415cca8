"""How sure the race is (torch-free): what it could and could not tell apart, said plainly,
and one label, ``confident`` or ``unsure``, with its reasons.

The race ranks its candidates by their validation metric, but a ranking is only as good as
the gaps between the values against their noise. Two statements follow from what it measured:

- **As good as the winner**: the candidates whose value, where they were left behind (or at
  the end), lies within twice the combined noise of the winner's value at that same epoch,
  |v - v_w(e)| <= 2 sqrt(s^2 + s_w^2), the test the race itself uses (``advise.race``). Their
  lrs span the range the race could not narrow: the choice within it is the race's best
  guess, not a measured difference.
- **At an end** (a caution): a winner that is the smallest or the largest lr raced (after
  the race's own extensions, ``advise.race``) says only that the best lies there or beyond.

Neither predicts that the advice is wrong for the whole budget. On the benchmark's 23
problems (``bench/bench_suggest.py``) the range was 4x wide or wider on 19, hits and misses
alike (so it is shown, not raised as a caution), and the winner lay at an end on 5, one of
them a miss; the other five misses came with no caution. The misses come mostly from the
race's short horizon, which no statement about its noise can see: these say how much the
race measured, not whether its advice holds over the whole budget.

**The label.** The advice is ``unsure`` where one of three things holds, each a cause of the
benchmark's misses, and ``confident`` otherwise:

- *the horizon*: the optimizer is not SGD (plain or with momentum). The race judges at half
  the budget; with SGD the best lr hardly moves between there and the budget (replayed on
  the benchmark's grids, ``bench/suggest_extrapolate.py``: its drift exponent is 0.07 from a
  sixth to half the budget and 0.00 from half to all of it), while with Adam and AdamW it
  keeps falling (0.62, then 0.22) by an amount that differs from one problem and one seed to
  the next, and that nothing the race measures predicts (correlation -0.31). An optimizer
  given by path or factory is SGD only where it is ``torch.optim.SGD``;
- *an end*: the winner is the smallest or largest lr raced;
- *a short race*: no candidate that went on to the last rung finished.

On the recorded benchmark (``bench/suggest_confidence.py``) five of the six misses on the
problems advise was not tuned on came with Adam or AdamW; the rule was read off those misses,
so its calibration there is in-sample. Fresh set 5, which it had not seen, gave two
``confident`` answers, both within noise, and four ``unsure`` ones, all within noise too:
over every set, confident advice was within noise on 12 of 14 (86%), unsure on 16 of 21
(BENCHMARKS.md, "Issue 27's end").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lrkit.advise.result import CONFIDENT, UNSURE, Confidence, RacedCandidate


def as_good_as_winner(candidates: Sequence[RacedCandidate], winner: float) -> tuple[float, float]:
    """The smallest and largest raced lr within noise of the ``winner``'s value at the epoch
    each was last measured (the winner itself included; a candidate of unknown noise, or one
    that diverged or failed, is not)."""
    best = next(c for c in candidates if c.lr == winner)
    tied = [winner]
    for c in candidates:
        if c.lr == winner or c.status != "done" or not best.curve:
            continue
        _, there = min(best.curve, key=lambda point: abs(point[0] - c.epochs_run))
        spread = math.hypot(c.value_std, best.value_std)
        if math.isfinite(spread) and abs(c.value - there) <= 2 * spread:
            tied.append(c.lr)
    return min(tied), max(tied)


def cautions(
    candidates: Sequence[RacedCandidate], winner: float, last_rung: float | None = None
) -> tuple[str, ...]:
    """Plain sentences on what the race could not measure: where its winner lies at an end
    of the candidates, and where it did not reach the ``last_rung`` (epochs) because no
    candidate that went on finished; none where it lies between others at the end."""
    said = []
    best = next(c for c in candidates if c.lr == winner)
    if last_rung is not None and best.epochs_run < last_rung - 1e-9:
        said.append(
            f"no candidate that went on to {last_rung:g} epochs finished (they diverged or "
            f"failed): the advice is the best that did, judged at {best.epochs_run:g} epochs"
        )
    lrs = sorted(c.lr for c in candidates)
    if len(lrs) >= 2 and winner in (lrs[0], lrs[-1]):
        end, beyond = ("smallest", "smaller") if winner == lrs[0] else ("largest", "larger")
        said.append(
            f"the race's winner is the {end} lr it raced ({winner:.4g}): the best may lie "
            f"there or at a {beyond} lr it did not try"
        )
    return tuple(said)


def confidence(
    candidates: Sequence[RacedCandidate],
    winner: float,
    last_rung: float,
    sgd: bool,
    optimizer: str,
) -> Confidence:
    """The label of the module's docstring: ``sgd`` says whether the optimizer is SGD (plain
    or momentum), ``optimizer`` names it in the reason."""
    reasons = list(cautions(candidates, winner, last_rung))
    if not sgd:
        reasons.insert(
            0,
            f"with {optimizer} the best lr keeps moving with the length of training, and the "
            "race judged at half the budget: how far it moves there is a guess",
        )
    return Confidence(UNSURE if reasons else CONFIDENT, tuple(reasons))
