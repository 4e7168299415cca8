"""Does ``lrkit advise``'s confidence label hold? Read off ``bench_suggest.py``'s results: for
every problem advise ran on, its label (``lrkit.advise.confidence.confidence`` applied to the
race it recorded) and whether its advice was within noise, per set; and its cost in budgets
of training (the range test's steps and the race's trial-epochs over the budget's).

The claim under test (issue 27): advice labelled ``confident`` is within noise at least 90%
of the time. The label's rule was read off the misses of the sets it is scored on here
(tuning, held out, fresh 1-4, and the scheduled tuning set), so those rates are in-sample;
fresh set 5 (run once, 2026-12-08) is the test it had not seen, reported apart.

Usage: python bench/suggest_confidence.py [--results bench/results/bench_suggest.json]
       [--cache-dir bench/results/suggest] [--out bench/results/suggest_confidence.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from lrkit.advise.confidence import confidence
from lrkit.advise.result import CONFIDENT, RacedCandidate
from lrkit.training.optimizers import OptimizerSpec
from suggest_problems import Problem, problems

HERE = Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parent.parent / "shared" / "data" / "mnist"


def raced_of(document: dict[str, Any]) -> RacedCandidate:
    """A recorded candidate as the race left it."""
    value = document["value"]
    std = document["value_std"]
    return RacedCandidate(
        lr=document["lr"],
        sources=tuple(document["sources"]),
        value=math.nan if value is None else value,
        value_std=math.nan if std is None else std,
        epochs_run=document["epochs_run"],
        status=document["status"],
        curve=tuple((e, math.nan if v is None else v) for e, v in document["curve"]),
        error=document.get("error"),
    )


def budgets_trained(details: dict[str, Any], steps: int) -> float:
    """The range test's steps and the race's trial-epochs, in runs of the budget."""
    points = sum(len(r["points"]) for r in details["range_test"]["rounds"])
    return points / steps + details["trial_epochs"] / details["epochs"]


def beyond_one_run(details: dict[str, Any], trained: float) -> float:
    """What ``--finish`` would have cost beyond one run: the advised lr trained on from the
    race's checkpoint where it is the winner (the rest of the budget), else from the start."""
    winner = next(c for c in details["candidates"] if c["lr"] == details["raced_lr"])
    resumed = winner["epochs_run"] if details["lr"] == details["raced_lr"] else 0.0
    return trained + (details["epochs"] - resumed) / details["epochs"] - 1.0


def budget_steps(problem: dict[str, Any], n_train: int) -> int:
    return math.ceil(problem["epochs"] * math.ceil(n_train / problem["batch_size"]))


def row_of(
    name: str, scored: dict[str, Any], cache_dir: Path, defined: dict[str, Problem]
) -> dict[str, Any] | None:
    """One problem's label, outcome and cost, or None where advise has no result."""
    result = scored["score"]["recipes"].get("advise")
    if result is None or result.get("pending") or result.get("lr") is None:
        return None
    cached = json.loads((cache_dir / f"{name}.json").read_text())
    details = cached["finders"]["advise"].get("details")
    if not details:
        return None
    problem = scored["problem"]
    candidates = [raced_of(c) for c in details["candidates"]]
    last_rung = max(c.epochs_run for c in candidates)
    spec = OptimizerSpec(problem["optimizer"])
    label = confidence(candidates, details["raced_lr"], last_rung, spec.sgd, spec.label)
    n_train = len(defined[name].make_data()[0]) if name in defined else None
    trained = budgets_trained(details, budget_steps(problem, n_train)) if n_train else None
    return {
        "problem": name,
        "role": problem["role"],
        "optimizer": problem["optimizer"],
        "schedule": problem.get("schedule"),
        "label": label.label,
        "reasons": list(label.reasons),
        "within_noise": bool(result["within_noise"]),
        "regret": result["regret"],
        "advised_lr": result["lr"],
        "best_lr": scored["score"]["best"]["lr"],
        "cost_wall": result.get("cost"),
        "budgets_trained": trained,
        "beyond_one_run_with_finish": beyond_one_run(details, trained)
        if trained is not None
        else None,
    }


def group_of(role: str) -> str:
    if role.startswith("fresh 5"):
        return "fresh 5 (unseen by the rule)"
    return "tuning" if role == "tuning" else "not tuned on (held out, fresh 1-4)"


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for group in sorted({group_of(r["role"]) for r in rows}):
        mine = [r for r in rows if group_of(r["role"]) == group]
        confident = [r for r in mine if r["label"] == CONFIDENT]
        unsure = [r for r in mine if r["label"] != CONFIDENT]
        costs = [r["budgets_trained"] for r in mine if r["budgets_trained"] is not None]
        beyond = [
            r["beyond_one_run_with_finish"]
            for r in mine
            if r["beyond_one_run_with_finish"] is not None
        ]
        out.append(
            {
                "set": group,
                "problems": len(mine),
                "within": sum(r["within_noise"] for r in mine),
                "confident": len(confident),
                "confident_within": sum(r["within_noise"] for r in confident),
                "unsure": len(unsure),
                "unsure_within": sum(r["within_noise"] for r in unsure),
                "median_budgets": statistics.median(costs) if costs else None,
                "max_budgets": max(costs) if costs else None,
                "median_beyond_with_finish": statistics.median(beyond) if beyond else None,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results" / "bench_suggest.json")
    parser.add_argument("--cache-dir", type=Path, default=HERE / "results" / "suggest")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "suggest_confidence.json")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_MNIST)
    args = parser.parse_args()
    document = json.loads(args.results.read_text())
    defined = problems(args.data_dir if args.data_dir.is_dir() else None)
    rows = [
        row
        for name, scored in document["problems"].items()
        if (row := row_of(name, scored, args.cache_dir, defined)) is not None
    ]
    print(
        "| problem | set | optimizer | recipe | label | within noise | budgets | beyond one "
        "run with --finish |"
    )
    print("|---|---|---|---|---|---|---:|---:|")
    for r in rows:
        cost = f"{r['budgets_trained']:.2f}" if r["budgets_trained"] is not None else "-"
        beyond = r["beyond_one_run_with_finish"]
        print(
            f"| {r['problem']} | {r['role']} | {r['optimizer']} | {r['schedule'] or 'constant'} "
            f"| {r['label']} | {'yes' if r['within_noise'] else 'no'} | {cost} | "
            f"{'-' if beyond is None else f'{beyond:.2f}'} |"
        )
    print()
    print(
        "| set | within | confident: within | unsure: within | budgets (median, max) | "
        "beyond one run with --finish (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    table = summary(rows)
    for s in table:
        cost = (
            f"{s['median_budgets']:.2f}, {s['max_budgets']:.2f}"
            if s["median_budgets"] is not None
            else "-"
        )
        beyond = s["median_beyond_with_finish"]
        print(
            f"| {s['set']} | {s['within']} of {s['problems']} | {s['confident_within']} of "
            f"{s['confident']} | {s['unsure_within']} of {s['unsure']} | {cost} | "
            f"{'-' if beyond is None else f'{beyond:.2f}'} |"
        )
    args.out.write_text(json.dumps({"rows": rows, "summary": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
