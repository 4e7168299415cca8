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
  ``suggest_forecast.forecast_together``), or, at 1/6, both (the union of the top 3 by each);
- the full race: every candidate to the full budget, the best there wins (6 budgets; what a
  grid of these six at this seed would say: the ceiling of any race).

The grid checks every 1/24 of the budget (a race checks 4 times a rung). The variant advise
runs was chosen on the tuning set; the held-out set is reported apart.

Usage: python bench/suggest_horizon.py [--cache-dir bench/results/suggest] [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
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
ADVISE = ("halving", "measured", "measured")
"""The variant lrkit advise runs."""

Curve = tuple[list[float], list[float]]


@dataclass(frozen=True)
class Variant:
    """A race: ``kind`` short, halving or full; for halving, how each cut ranks."""

    kind: str
    first: str = "measured"
    second: str = "measured"
    prefer_smaller: bool = False
    """At the pick, the smallest lr within noise of the best (2 x their combined noise)."""

    @property
    def name(self) -> str:
        if self.kind == "short":
            return "short race: all to 1/6, best wins"
        if self.kind == "full":
            return "full race: all to the budget, best wins"
        tie = ", ties to the smaller" if self.prefer_smaller else ""
        return f"halving: 1/6 {self.first}, 1/2 {self.second}{tie}"


VARIANTS = [
    Variant("short"),
    *(
        Variant("halving", first, second)
        for first, second in itertools.product(
            ("measured", "together", "both"), ("measured", "together")
        )
    ),
    Variant("halving", "measured", "measured", prefer_smaller=True),
    Variant("full"),
]


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
    epochs, values = curve
    kept = [(e, v) for e, v in zip(epochs, values, strict=True) if 0 < e <= until * (1 + 1e-9)]
    return [e for e, _ in kept], [v for _, v in kept]


def measured(curve: Curve, metric: str) -> float:
    values = curve[1]
    ok = bool(values) and all(math.isfinite(v) for v in values)
    return values[-1] if ok else worst(metric)


def scores(how: str, curves: Sequence[Curve], horizon: float, metric: str) -> list[float]:
    if how == "measured":
        return [measured(c, metric) for c in curves]
    found = forecast_together(curves, horizon, metric)
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
    key = key_of(metric)
    if how == "both":
        kept: list[int] = []
        for each in ("measured", "together"):
            got = scores(each, parts, horizon, metric)
            order = sorted(range(len(alive)), key=lambda k: key(got[k]))
            kept += [alive[k] for k in order[:keep] if alive[k] not in kept]
        return kept
    got = scores(how, parts, horizon, metric)
    order = sorted(range(len(alive)), key=lambda k: key(got[k]))
    return [alive[k] for k in order[:keep]]


def replay(
    variant: Variant, curves: Sequence[Curve], epochs: float, metric: str
) -> tuple[int, float]:
    """The index the race picks and the epochs it trains (in budgets)."""
    alive = list(range(len(curves)))
    key = key_of(metric)
    if variant.kind in ("short", "full"):
        until = epochs / 6 if variant.kind == "short" else epochs
        final = [measured(cut(c, until), metric) for c in curves]
        return min(alive, key=lambda i: key(final[i])), len(alive) * until / epochs
    spent = len(alive) / 6
    alive = top(variant.first, alive, curves, epochs / 6, epochs, metric, KEEP_FIRST)
    spent += len(alive) * (1 / 2 - 1 / 6)
    ranked = top(variant.second, alive, curves, epochs / 2, epochs, metric, len(alive))
    if not variant.prefer_smaller:
        return ranked[0], spent
    parts = {i: cut(curves[i], epochs / 2) for i in ranked}

    def noise(i: int) -> float:
        value = measured(parts[i], metric)
        std = jitter(parts[i][1][-4:])
        if metric == "accuracy":
            error = binomial_error(value, VAL_SIZE[0])
            std = math.hypot(error, std) if math.isfinite(std) else error
        return std

    best = ranked[0]

    def within(i: int) -> bool:
        gap = abs(measured(parts[best], metric) - measured(parts[i], metric))
        spread = math.hypot(noise(best), noise(i))
        return math.isfinite(spread) and gap <= 2 * spread

    return min((i for i in ranked if within(i)), default=best), spent


VAL_SIZE = [1000]
"""The validation examples of the problem being replayed (for the binomial error)."""


def problem_rows(document: dict[str, Any], metric: str, epochs: float) -> list[dict[str, Any]]:
    grid = sorted(document["problem"]["grid"])
    runs = {(r["lr"], r["seed"]): r for r in document["runs"] if r["optimizer"] == "problem"}
    seeds = sorted({s for _, s in runs})
    rows = []
    for seed in seeds:
        other = next((s for s in seeds if s != seed), seed)
        if any((lr, seed) not in runs or (lr, other) not in runs for lr in grid):
            continue
        curves = [
            (runs[lr, seed]["curve"]["epoch"], value_of(runs[lr, seed], metric)) for lr in grid
        ]
        finals = [runs[lr, other]["score"] for lr in grid]
        finals = [worst(metric) if f is None or not math.isfinite(f) else f for f in finals]
        best = min(range(len(grid)), key=lambda i: key_of(metric)(finals[i]))
        for start in range(max(0, best - CANDIDATES + 1), min(best, len(grid) - CANDIDATES) + 1):
            window = list(range(start, start + CANDIDATES))
            for variant in VARIANTS:
                picked, spent = replay(variant, [curves[i] for i in window], epochs, metric)
                got = regret(metric, finals[best], finals[window[picked]])
                rows.append(
                    {
                        "seed": seed,
                        "offset": best - start,
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
    table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    by_problem: dict[str, dict[str, float]] = {}
    for path in sorted(args.cache_dir.glob("*.json")):
        document = json.loads(path.read_text())
        problem = known.get(document["problem"]["name"])
        if problem is None:
            continue
        VAL_SIZE[0] = len(problem.make_data()[1])
        rows = problem_rows(document, problem.metric, problem.epochs)
        part = "held out" if problem.held_out else "tuning"
        for row in rows:
            table.setdefault((part, row["variant"]), []).append(row)
        advised = [r for r in rows if r["variant"] == Variant(*ADVISE).name]
        if advised:
            by_problem[problem.name] = {
                "within": statistics.fmean(r["within"] for r in advised),
                "mean_regret": statistics.fmean(min(r["regret"], 1.0) for r in advised),
            }
    print("the race replayed on the grid's curves (regret on the other seed, capped at 1)")
    print(f"{'set':9} {'variant':48} {'n':>4} {'within':>7} {'mean regret':>12} {'budgets':>8}")
    summary = []
    for (part, name), rows in sorted(table.items()):
        entry = {
            "set": part,
            "variant": name,
            "n": len(rows),
            "within": statistics.fmean(r["within"] for r in rows),
            "mean_regret": statistics.fmean(min(r["regret"], 1.0) for r in rows),
            "budgets": statistics.fmean(r["budgets"] for r in rows),
            "advise": name == Variant(*ADVISE).name,
        }
        summary.append(entry)
        mark = " <- advise" if entry["advise"] else ""
        print(
            f"{part:9} {name:48} {entry['n']:4d} {entry['within']:7.2f} "
            f"{entry['mean_regret']:12.4f} {entry['budgets']:8.2f}{mark}"
        )
    print("\nadvise's variant by problem (share of windows and seeds within noise, mean regret):")
    for name, entry in by_problem.items():
        print(f"  {name:22} {entry['within']:5.2f} {entry['mean_regret']:8.4f}")
    args.out.write_text(json.dumps({"summary": summary, "by_problem": by_problem}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
