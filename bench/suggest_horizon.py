"""Does the race of ``lrkit advise`` pick what the full budget would have picked? Its
short-horizon question, answered on the grid's own curves: every race variant is replayed on
the curves that ``bench_suggest.py`` trained and stored, at no training cost.

For each problem and seed s, the candidates are six consecutive grid lrs (about two and a
half decades) at every offset that holds the lr best at the full budget, and the race is
replayed on seed s's curves. What a variant picks is scored on the other seed, as the
benchmark scores advise (a race does not get the seed it is judged on): regret against the
other seed's best grid value, in the benchmark's units (accuracy points, or the log ratio of
losses), and within noise when regret <= the floor (0.003 accuracy, log 1.02).

The variants:

- a short race: every candidate to 1/6 of the budget, the best there wins (1 budget);
- successive halving, advise's plan: every candidate to 1/6, the better half (3 of 6) on to
  1/2, where the best wins (2 budgets); each cut ranking by: measured (the value there),
  together (the forecast at the full budget, one power-law exponent for all,
  ``suggest_forecast.forecast_together``), at 1/6, both (the union of the top 3 by each), or
  (with the edge rule) "last 2"/"last 3": the mean of the rung's last two or three checks, to
  damp the noise of one check (issue 27);
- halving with the edge rule (advise's race, ``lrkit.advise.race``): after the first cut,
  while the leader is the smallest candidate the next grid lr below joins, while it is the
  largest (or every candidate is within noise of it) the next above does, up to four; as
  variants, a flat rung that goes down when the leader is at the bottom, or ends only (no
  flat trigger);
- halving with the edge rule, picking by the drift of the optimum: the vertex of a parabola
  (log lr against the value) through each rung's best and its neighbours, the one at 1/2
  moved on to the full budget as the power of the time that carried it from 1/6, the
  nearest survivor to it wins;
- halving with the edge rule and a last rung at the full budget: (1/6, keep 3), (1/2, keep
  2), (1, the best) or (1/8, 3), (1/3, 2), (1, the best), about 3 budgets;
- the full race: every candidate to the full budget, the best there wins (6 budgets; what a
  grid of these six at this seed would say: the ceiling of any race).

Every variant is scored on the lr the race picks; the horizon correction that advise
applies after the race for Adam and AdamW (``lrkit.advise.horizon``) is not replayed here
(it moves the answer off the grid) but scored by ``bench_suggest.py``, which trains it.

Windows are placed so that the full budget's best lr is inside ("inside") or one to three grid
steps past either end ("outside": where the range test's ladder missed). Ties in accuracy are
broken by the validation loss, as in the race.

The grid checks every 1/24 of the budget (a race checks 4 times a rung). The variant advise
runs was chosen on the tuning set; the held-out set is reported apart.

Usage: python bench/suggest_horizon.py [--cache-dir bench/results/suggest] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrkit.advise.race import binomial_error, jitter
from suggest_forecast import forecast_together

HERE = Path(__file__).resolve().parent
CANDIDATES = 6
KEEP_FIRST = 3
FLOOR = {"accuracy": 0.003, "loss": math.log(1.02)}

Curve = tuple[list[float], list[float], list[float]]
"""Epochs, the metric and the validation loss at each check."""


@dataclass(frozen=True)
class Variant:
    """A race: ``kind`` short, halving or full; for halving, how each cut ranks, whether the
    pick breaks ties towards the smaller lr, and whether the first rung adds candidates
    beyond an end of the window while the leader is there (advise's edge rule)."""

    kind: str
    first: str = "measured"
    second: str = "measured"
    prefer_smaller: bool = False
    edge: bool = False
    flat: str = "up"
    """With the edge rule, a rung within noise everywhere: extends upwards ("up", advise),
    towards a leader at the bottom and else upwards ("leader"), or not at all ("none")."""
    rungs: tuple[tuple[float, int], ...] = ()
    """A plan other than advise's (1/6, keep 3), (1/2, the best): each rung's share of the
    budget and how many go on from it (the last: 1, the pick)."""
    pick: str = "best"
    """The last rung's answer: its best candidate ("best"), or the vertex of a parabola
    through the best and its neighbours moved on to the full budget by the drift of the
    rungs' vertices, as a power of the time ("drift")."""

    @property
    def name(self) -> str:
        if self.kind == "short":
            return "short race: all to 1/6, best wins"
        if self.kind == "full":
            return "full race: all to the budget, best wins"
        tie = ", ties to the smaller" if self.prefer_smaller else ""
        flats = {"up": "", "leader": ", a flat rung follows the leader", "none": ", ends only"}
        edge = f", + edge rule{flats[self.flat]}" if self.edge else ""
        pick = "" if self.pick == "best" else f", pick {self.pick}"
        if self.rungs:
            plan = " ".join(f"{f:.3g}:{k}" for f, k in self.rungs)
            return f"halving, rungs {plan}{tie}{', + edge rule' if self.edge else ''}"
        return f"halving: 1/6 {self.first}, 1/2 {self.second}{tie}{edge}{pick}"


VARIANTS = [
    Variant("short"),
    Variant("halving"),
    Variant("halving", edge=True),
    Variant("halving", edge=True, flat="leader"),
    Variant("halving", edge=True, flat="none"),
    Variant("halving", "together", "measured"),
    Variant("halving", "measured", "together"),
    Variant("halving", "both", "measured"),
    Variant("halving", prefer_smaller=True),
    Variant("halving", "last 2", "last 2", edge=True),
    Variant("halving", "last 3", "last 3", edge=True),
    Variant("halving", edge=True, pick="drift"),
    Variant("halving", edge=True, rungs=((1 / 6, 3), (1 / 2, 2), (1.0, 1))),
    Variant("halving", edge=True, rungs=((1 / 8, 3), (1 / 3, 2), (1.0, 1))),
    Variant("full"),
]
ADVISE = Variant("halving", edge=True)
"""The race lrkit advise runs."""
EDGE_MAX = 4
"""Candidates the edge rule may add (advise: ``driver.MAX_EXTENSIONS``)."""
SHIFT = 3
"""Windows are placed up to this many grid steps past the best lr, on either side."""


def value_of(run: dict[str, Any], metric: str) -> list[float]:
    key = "val_accuracy" if metric == "accuracy" else "val_loss"
    return [math.nan if v is None else float(v) for v in run["curve"][key]]


def worst(metric: str) -> float:
    return 0.0 if metric == "accuracy" else math.inf


def key_of(metric: str) -> Callable[[float], float]:
    """Sort key: best first."""
    return (lambda v: -v) if metric == "accuracy" else (lambda v: v)


def regret(metric: str, best: float, got: float) -> float:
    if metric == "accuracy":
        return best - got
    return math.inf if not math.isfinite(got) else math.log(got / best)


def cut(curve: Curve, until: float) -> Curve:
    """The checks up to ``until`` (the initial one, at epoch 0, left out)."""
    kept = [p for p in zip(*curve, strict=True) if 0 < p[0] <= until * (1 + 1e-9)]
    return [p[0] for p in kept], [p[1] for p in kept], [p[2] for p in kept]


def measured(curve: Curve, metric: str) -> float:
    values = curve[1]
    ok = bool(values) and all(math.isfinite(v) for v in values)
    return values[-1] if ok else worst(metric)


def rank_of(value: float, curve: Curve, metric: str) -> tuple[float, float]:
    """Sort key, best first, as the race ranks: the value, then (accuracy) the loss."""
    if metric != "accuracy":
        return value, 0.0
    loss = curve[2][-1] if curve[2] and math.isfinite(curve[2][-1]) else math.inf
    return -value, loss


def last_checks(curve: Curve, metric: str, k: int, horizon: float) -> float:
    """The mean of the value at the race's last ``k`` checks of the rung that a cut curve
    ends (four a rung: the first rung is 0 to 1/6 of the budget, the second 1/6 to 1/2)."""
    epochs, values = curve[0], curve[1]
    if not values or not all(math.isfinite(v) for v in values):
        return worst(metric)
    end = epochs[-1]
    start = 0.0 if end <= horizon / 6 * (1 + 1e-9) else horizon / 6
    step = (end - start) / 4
    at = [
        min(range(len(epochs)), key=lambda i: abs(epochs[i] - (end - j * step))) for j in range(k)
    ]
    return statistics.fmean(values[i] for i in at)


def scores(how: str, curves: Sequence[Curve], horizon: float, metric: str) -> list[float]:
    if how == "measured":
        return [measured(c, metric) for c in curves]
    if how.startswith("last "):
        return [last_checks(c, metric, int(how.split()[1]), horizon) for c in curves]
    found = forecast_together([(c[0], c[1]) for c in curves], horizon, metric)
    return [
        f.value
        if math.isfinite(f.value) and measured(c, metric) != worst(metric)
        else worst(metric)
        for f, c in zip(found, curves, strict=True)
    ]


def top(
    how: str,
    alive: list[int],
    curves: Sequence[Curve],
    until: float,
    horizon: float,
    metric: str,
    keep: int,
) -> list[int]:
    parts = [cut(curves[i], until) for i in alive]
    if how == "both":
        kept: list[int] = []
        for each in ("measured", "together"):
            got = scores(each, parts, horizon, metric)
            order = sorted(range(len(alive)), key=lambda k: rank_of(got[k], parts[k], metric))
            kept += [alive[k] for k in order[:keep] if alive[k] not in kept]
        return kept
    got = scores(how, parts, horizon, metric)
    order = sorted(range(len(alive)), key=lambda k: rank_of(got[k], parts[k], metric))
    return [alive[k] for k in order[:keep]]


def noise_of(curve: Curve, metric: str) -> float:
    """A cut curve's noise as the race measures it (``lrkit.advise.race``)."""
    value = measured(curve, metric)
    std = jitter(curve[1][-4:])
    if metric != "accuracy":
        return std
    error = binomial_error(value, VAL_SIZE[0])
    return math.hypot(error, std) if math.isfinite(std) else error


def within(a: Curve, b: Curve, metric: str) -> bool:
    spread = math.hypot(noise_of(a, metric), noise_of(b, metric))
    gap = abs(measured(a, metric) - measured(b, metric))
    return math.isfinite(spread) and gap <= 2 * spread


def extend(
    window: list[int], curves: Sequence[Curve], until: float, metric: str, use_flat: str = "up"
) -> list[int]:
    """advise's edge rule on the grid: add the next grid lr beyond an end while the leader is
    there (or every candidate is within noise of it: then upwards)."""
    alive = list(window)
    for _ in range(EDGE_MAX):
        parts = {i: cut(curves[i], until) for i in alive}
        leader = min(alive, key=lambda i: rank_of(measured(parts[i], metric), parts[i], metric))
        low, high = min(alive), max(alive)
        flat = use_flat != "none" and all(within(parts[leader], parts[i], metric) for i in alive)
        down = leader == low and (not flat or use_flat == "leader")
        top_ok = measured(parts[high], metric) != worst(metric)
        if (leader == high or flat) and not down and top_ok and high + 1 < len(curves):
            alive.append(high + 1)
        elif down and low > 0:
            alive.append(low - 1)
        else:
            break
    return alive


def vertex(lrs: Sequence[float], values: dict[int, float], metric: str) -> float:
    """log lr of the optimum of a rung: the vertex of the parabola through the best
    candidate and its two neighbours (log lr against the value, log value for a loss),
    clamped to the neighbours; the best itself where it is at an end or a neighbour
    diverged."""
    order = sorted(values)
    best = min(order, key=lambda i: key_of(metric)(values[i]))
    k = order.index(best)
    if k in (0, len(order) - 1):
        return math.log(lrs[best])
    trio = order[k - 1 : k + 2]
    ys = [values[i] for i in trio]
    if not all(math.isfinite(y) and y != worst(metric) for y in ys):
        return math.log(lrs[best])
    if metric == "loss":
        ys = [math.log(max(y, 1e-300)) for y in ys]
    xs = [math.log(lrs[i]) for i in trio]
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom
    if a == 0:
        return x1
    x = -b / (2 * a)
    return min(max(x, x0), x2)


def nearest(lrs: Sequence[float], x: float, among: Sequence[int]) -> int:
    return min(among, key=lambda i: abs(math.log(lrs[i]) - x))


def replay(
    variant: Variant,
    window: list[int],
    curves: Sequence[Curve],
    epochs: float,
    metric: str,
    lrs: Sequence[float] = (),
) -> tuple[int, float]:
    """The grid index the race picks and the epochs it trains (in budgets)."""
    if variant.kind in ("short", "full"):
        until = epochs / 6 if variant.kind == "short" else epochs
        ends = {i: cut(curves[i], until) for i in window}
        final = {i: rank_of(measured(ends[i], metric), ends[i], metric) for i in window}
        return min(window, key=lambda i: final[i]), len(window) * until / epochs
    first_cut = variant.rungs[0][0] if variant.rungs else 1 / 6
    if variant.edge:
        alive = extend(window, curves, epochs * first_cut, metric, variant.flat)
    else:
        alive = list(window)
    if variant.rungs:
        spent, before = 0.0, 0.0
        for share, keep in variant.rungs:
            spent += len(alive) * (share - before)
            alive = top("measured", alive, curves, epochs * share, epochs, metric, keep)
            before = share
        return alive[0], spent
    spent = len(alive) / 6
    first_values = {i: measured(cut(curves[i], epochs / 6), metric) for i in alive}
    alive = top(variant.first, alive, curves, epochs / 6, epochs, metric, KEEP_FIRST)
    spent += len(alive) * (1 / 2 - 1 / 6)
    ranked = top(variant.second, alive, curves, epochs / 2, epochs, metric, len(alive))
    if variant.pick != "best":
        second_values = {i: measured(cut(curves[i], epochs / 2), metric) for i in ranked}
        x2 = vertex(lrs, second_values, metric)
        x2 += (x2 - vertex(lrs, first_values, metric)) * math.log(2) / math.log(3)
        x2 = min(max(x2, math.log(lrs[min(ranked)])), math.log(lrs[max(ranked)]))
        return nearest(lrs, x2, sorted(ranked)), spent
    if not variant.prefer_smaller:
        return ranked[0], spent
    parts = {i: cut(curves[i], epochs / 2) for i in ranked}
    tied = [i for i in ranked if within(parts[ranked[0]], parts[i], metric)]
    return min(tied, default=ranked[0]), spent


VAL_SIZE = [1000]
"""The validation examples of the problem being replayed (for the binomial error)."""


@dataclass(frozen=True)
class Seeded:
    """One seed's curves at every grid lr, and the other seed's final values (the worst
    where a run diverged) and best grid index: what a replay picks on and is scored on."""

    seed: int
    curves: list[Curve]
    finals: list[float]
    best: int


def seeded(document: dict[str, Any], metric: str, constant: float = 0.0) -> list[Seeded]:
    """Each seed of a problem's grid whose runs are all there, paired with the other seed;
    a loss metric with the problem's ``constant`` added (``Problem.score_constant``)."""
    shift = constant if metric == "loss" else 0.0
    grid = sorted(document["problem"]["grid"])
    runs = {(r["lr"], r["seed"]): r for r in document["runs"] if r["optimizer"] == "problem"}
    seeds = sorted({s for _, s in runs})
    out = []
    for seed in seeds:
        other = next((s for s in seeds if s != seed), seed)
        if any((lr, seed) not in runs or (lr, other) not in runs for lr in grid):
            continue
        curves = [
            (
                runs[lr, seed]["curve"]["epoch"],
                [v + shift for v in value_of(runs[lr, seed], metric)],
                value_of(runs[lr, seed], "loss"),
            )
            for lr in grid
        ]
        finals = [runs[lr, other]["score"] for lr in grid]
        finals = [worst(metric) if f is None or not math.isfinite(f) else f + shift for f in finals]
        best = min(range(len(grid)), key=lambda i: key_of(metric)(finals[i]))
        out.append(Seeded(seed, curves, finals, best))
    return out


def problem_rows(
    document: dict[str, Any], metric: str, epochs: float, constant: float = 0.0
) -> list[dict[str, Any]]:
    grid = sorted(document["problem"]["grid"])
    rows = []
    for side in seeded(document, metric, constant):
        seed, curves, finals, best = side.seed, side.curves, side.finals, side.best
        first = max(0, best - CANDIDATES + 1 - SHIFT)
        last = min(best + SHIFT, len(grid) - CANDIDATES)
        for start in range(first, last + 1):
            window = list(range(start, start + CANDIDATES))
            outside = max(start - best, best - (start + CANDIDATES - 1), 0)
            for variant in VARIANTS:
                picked, spent = replay(variant, window, curves, epochs, metric, grid)
                got = regret(metric, finals[best], finals[picked])
                rows.append(
                    {
                        "seed": seed,
                        "outside": outside,
                        "variant": variant.name,
                        "regret": got,
                        "within": got <= FLOOR[metric],
                        "budgets": spent,
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=HERE / "results" / "suggest")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "suggest_horizon.json")
    parser.add_argument(
        "--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist"
    )
    args = parser.parse_args()
    from suggest_problems import problems

    known = problems(args.data_dir)
    advise = ADVISE.name
    table: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    by_problem: dict[str, dict[str, float]] = {}
    for path in sorted(args.cache_dir.glob("*.json")):
        document = json.loads(path.read_text())
        problem = known.get(document["problem"]["name"])
        if problem is None:
            continue
        VAL_SIZE[0] = len(problem.make_data()[1])
        rows = problem_rows(document, problem.metric, problem.epochs, problem.score_constant())
        for row in rows:
            where = "inside" if row["outside"] == 0 else "outside"
            table.setdefault((problem.role, where, row["variant"]), []).append(row)
        advised = [r for r in rows if r["variant"] == advise]
        if advised:
            by_problem[problem.name] = {
                "within": statistics.fmean(r["within"] for r in advised),
                "mean_regret": statistics.fmean(min(r["regret"], 1.0) for r in advised),
            }
    print("the race replayed on the grid's curves: the share of candidate windows (and seeds)")
    print("whose pick is within noise on the other seed, its mean regret (capped at 1), and the")
    print("budgets trained; 'inside': the best grid lr is among the six, 'outside': 1-3 steps off")
    header = f"{'set':9} {'best':8} {'variant':52} {'n':>4} {'within':>7} {'regret':>8}"
    print(f"{header} {'budgets':>8}")
    summary = []
    for (part, where, name), rows in sorted(table.items()):
        entry = {
            "set": part,
            "best": where,
            "variant": name,
            "n": len(rows),
            "within": statistics.fmean(r["within"] for r in rows),
            "mean_regret": statistics.fmean(min(r["regret"], 1.0) for r in rows),
            "budgets": statistics.fmean(r["budgets"] for r in rows),
            "advise": name == advise,
        }
        summary.append(entry)
        mark = " <- advise" if entry["advise"] else ""
        print(
            f"{part:9} {where:8} {name:52} {entry['n']:4d} {entry['within']:7.2f} "
            f"{entry['mean_regret']:8.4f} {entry['budgets']:8.2f}{mark}"
        )
    print("\nadvise's race by problem (share within noise, mean regret), windows inside and out:")
    for name, entry in by_problem.items():
        print(f"  {name:22} {entry['within']:5.2f} {entry['mean_regret']:8.4f}")
    args.out.write_text(json.dumps({"summary": summary, "by_problem": by_problem}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
