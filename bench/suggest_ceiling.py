"""How often could any method on one seed be within noise? A reference for issue 27's target
(advise within noise on 80% of the problems it was not tuned on), read off the grids that
``bench_suggest.py`` trained, at no training cost.

The benchmark scores an lr by its mean over the grid's seeds against the best grid lr's mean,
within noise when the regret is at most ``suggest_scores.noise_threshold`` (2 sd at the best,
or the floor). A method that trains on one seed sees that seed's curves only. Three
references, each scored exactly so:

- **grid search, one seed**: every grid lr trained to the full budget on seed s, the best
  there picked (as many budgets as the grid has lrs, 14 to 28). The picking seed is one of
  the two it is scored on, so this is optimistic;
- **grid search at half the budget**: the same, picked at the check nearest half the budget
  (what a race judging at half the budget could at best pick, with every grid lr raced);
- **advise**: the benchmark's own result for ``lrkit advise`` (its race's seed is none of the
  grid's), for comparison.

Each set is reported apart (fresh set 5, unseen by the method, too).

Usage: python bench/suggest_ceiling.py [--cache-dir bench/results/suggest]
       [--results bench/results/bench_suggest.json] [--out bench/results/suggest_ceiling.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from suggest_problems import Problem, problems
from suggest_scores import GridPoint, better, mean_of, noise_threshold, regret, sd_of
from suggest_training import PROBLEM_OPTIMIZER, score_of

HERE = Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parent.parent / "shared" / "data" / "mnist"


def at_half(run: dict[str, Any], metric: str, epochs: float) -> float:
    """The run's validation metric at the check nearest half the budget (the worst where it
    did not get there or is not finite)."""
    worst = 0.0 if metric == "accuracy" else math.inf
    curve = run.get("curve") or {}
    key = "val_accuracy" if metric == "accuracy" else "val_loss"
    points = [
        (e, v)
        for e, v in zip(curve.get("epoch", []), curve.get(key, []), strict=False)
        if v is not None and e > 0
    ]
    if not points:
        return worst
    epoch, value = min(points, key=lambda p: abs(p[0] - epochs / 2))
    if abs(epoch - epochs / 2) > epochs / 8 or not math.isfinite(value):
        return worst
    return float(value)  # a constant added to a loss would change no pick


def problem_row(problem: Problem, document: dict[str, Any]) -> dict[str, Any] | None:
    """Whether each reference is within noise on this problem (None: a grid run missing)."""
    metric = problem.metric
    runs = {
        (r["lr"], r["seed"]): r for r in document["runs"] if r["optimizer"] == PROBLEM_OPTIMIZER
    }
    seeds = sorted({s for _, s in runs})[:2]
    grid = sorted(problem.grid)
    if len(seeds) < 2 or any((lr, s) not in runs for lr in grid for s in seeds):
        return None
    points = {}
    for lr in grid:
        scores = tuple(score_of(runs[lr, s], metric, problem.score_constant()) for s in seeds)
        diverged = sum(runs[lr, s]["status"] != "done" for s in seeds)
        points[lr] = GridPoint(lr, scores, mean_of(scores), sd_of(scores), diverged)
    best = grid[0]
    for lr in grid[1:]:
        if better(metric, points[lr].mean, points[best].mean):
            best = lr
    noise = noise_threshold(metric, points[best])

    def within(lr: float) -> bool:
        point = points[lr]
        return point.diverged == 0 and regret(metric, points[best].mean, point.mean) <= noise

    def pick(value: dict[float, float]) -> float:
        chosen = grid[0]
        for lr in grid[1:]:
            if better(metric, value[lr], value[chosen]):
                chosen = lr
        return chosen

    full = [within(pick({lr: points[lr].scores[i] for lr in grid})) for i in range(len(seeds))]
    half = [
        within(pick({lr: at_half(runs[lr, s], metric, problem.epochs) for lr in grid}))
        for s in seeds
    ]
    return {
        "problem": problem.name,
        "role": problem.role,
        "grid_lrs": len(grid),
        "full_budget_one_seed": full,
        "half_budget_one_seed": half,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=HERE / "results" / "suggest")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "bench_suggest.json")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "suggest_ceiling.json")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_MNIST)
    args = parser.parse_args()
    defined = problems(args.data_dir if args.data_dir.is_dir() else None)
    scored = json.loads(args.results.read_text())["problems"]
    rows = []
    for path in sorted(args.cache_dir.glob("*.json")):
        document = json.loads(path.read_text())
        problem = defined.get(document["problem"]["name"])
        row = problem_row(problem, document) if problem is not None else None
        if row is None:
            continue
        advise = scored.get(problem.name, {}).get("score", {}).get("recipes", {}).get("advise")
        row["advise"] = None if advise is None else bool(advise["within_noise"])
        rows.append(row)
    sets: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["role"] != "tuning", r["role"])):
        sets.setdefault(row["role"], []).append(row)
    unseen = [r for r in rows if r["role"] != "tuning"]
    sets["all unseen"] = unseen
    print(
        "| set | problems | grid search, one seed, full budget | the same at half the budget "
        "| advise |"
    )
    print("|---|---:|---:|---:|---:|")
    summary = []
    for name, mine in sets.items():
        full = [w for r in mine for w in r["full_budget_one_seed"]]
        half = [w for r in mine for w in r["half_budget_one_seed"]]
        advised = [r["advise"] for r in mine if r["advise"] is not None]
        entry = {
            "set": name,
            "problems": len(mine),
            "full_budget_one_seed": sum(full) / len(full),
            "half_budget_one_seed": sum(half) / len(half),
            "advise_within": sum(advised),
            "advise_of": len(advised),
        }
        summary.append(entry)
        print(
            f"| {name} | {len(mine)} | {entry['full_budget_one_seed']:.2f} | "
            f"{entry['half_budget_one_seed']:.2f} | {sum(advised)} of {len(advised)} |"
        )
    args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
