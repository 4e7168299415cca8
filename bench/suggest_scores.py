"""Scores of ``bench_suggest.py``, computed from the cached runs. The definitions are stated
once, in ``bench_suggest.py``'s docstring; this module implements them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from suggest_problems import Problem
from suggest_recipes import Recipe, recipe_lr
from suggest_training import PROBLEM_OPTIMIZER, score_of

NOISE_FLOOR = {"accuracy": 0.003, "loss": math.log(1.02)}
"""The least regret that counts as noise: 0.003 accuracy, 2% above the best loss."""

RunKey = tuple[str, float, int]
"""(optimizer, lr, seed)."""


@dataclass(frozen=True)
class GridPoint:
    lr: float
    scores: tuple[float, ...]
    mean: float
    sd: float
    diverged: int
    """Seeds whose run did not finish (diverged)."""


@dataclass(frozen=True)
class RecipeScore:
    recipe: str
    lr: float | None
    scores: tuple[float, ...]
    mean: float
    regret: float
    within_noise: bool
    miss: bool
    """No lr, or a run that diverged."""
    cost: float
    """Wall time over one grid run (the median of the problem's grid runs)."""
    effective_lr: float | None = None
    """Prodigy and D-Adaptation: d x lr at the end of the runs (their mean)."""
    pending: bool = False
    """Some of its runs (or its finder) are not there yet: left out of the summary."""


@dataclass(frozen=True)
class ProblemScore:
    problem: str
    held_out: bool
    metric: str
    grid: tuple[GridPoint, ...]
    best: GridPoint
    noise: float
    """The largest regret that is within noise, in regret's units."""
    at_edge: bool
    """The best grid lr is the first or the last: the grid should be widened."""
    run_seconds: float
    recipes: dict[str, RecipeScore]


def better(metric: str, a: float, b: float) -> bool:
    return a > b if metric == "accuracy" else a < b


def mean_of(scores: Sequence[float]) -> float:
    return math.fsum(scores) / len(scores) if scores else math.nan


def sd_of(scores: Sequence[float]) -> float:
    """The sample standard deviation (n - 1); 0 for one seed."""
    if len(scores) < 2 or not all(math.isfinite(s) for s in scores):
        return 0.0
    return statistics.stdev(scores)


def regret(metric: str, best: float, mean: float) -> float:
    """best - mean (accuracy); log(mean / best) (loss): >= 0 when worse than the best. The
    loss's regret is a log ratio so that one problem with a tiny best loss (a regression
    fitted almost exactly) cannot outweigh the rest in a mean: 2x the best loss is 0.69."""
    if metric == "accuracy":
        return best - mean
    if math.isinf(mean):
        return math.inf
    return math.log(mean / best)


def noise_threshold(metric: str, best: GridPoint) -> float:
    """2 sd at the best grid lr, in regret's units, or the floor."""
    if metric == "accuracy":
        return max(2 * best.sd, NOISE_FLOOR[metric])
    return max(math.log1p(2 * best.sd / best.mean), NOISE_FLOOR[metric])


def score_problem(
    problem: Problem,
    grid: Sequence[float],
    seeds: Sequence[int],
    runs: dict[RunKey, dict[str, Any]],
    finders: dict[str, Any],
    recipes: Sequence[Recipe],
) -> ProblemScore | None:
    """The problem's scores; None while a grid run is missing."""
    metric = problem.metric
    points = []
    for lr in grid:
        records = [runs.get((PROBLEM_OPTIMIZER, lr, s)) for s in seeds]
        if any(r is None for r in records):
            return None
        scores = tuple(
            score_of(r, metric, problem.score_constant()) for r in records if r is not None
        )
        diverged = sum(1 for r in records if r is not None and r["status"] != "done")
        points.append(GridPoint(lr, scores, mean_of(scores), sd_of(scores), diverged))
    best = points[0]
    for point in points[1:]:
        if better(metric, point.mean, best.mean):
            best = point
    index = points.index(best)
    noise = noise_threshold(metric, best)
    seconds = [
        runs[(PROBLEM_OPTIMIZER, lr, s)]["seconds"]
        for lr in grid
        for s in seeds
        if runs[(PROBLEM_OPTIMIZER, lr, s)]["status"] == "done"
    ]
    run_seconds = statistics.median(seconds) if seconds else math.nan
    scored = {
        r.name: score_recipe(problem, r, best, noise, seeds, runs, finders, run_seconds)
        for r in recipes
    }
    return ProblemScore(
        problem=problem.name,
        held_out=problem.held_out,
        metric=metric,
        grid=tuple(points),
        best=best,
        noise=noise,
        at_edge=index in (0, len(points) - 1),
        run_seconds=run_seconds,
        recipes=scored,
    )


def score_recipe(
    problem: Problem,
    recipe: Recipe,
    best: GridPoint,
    noise: float,
    seeds: Sequence[int],
    runs: dict[RunKey, dict[str, Any]],
    finders: dict[str, Any],
    run_seconds: float,
) -> RecipeScore:
    metric = problem.metric
    worst = 0.0 if metric == "accuracy" else math.inf
    if recipe.finder is not None:
        found = finders.get(recipe.finder)
        if found is None or found.get("status") != "done":
            return RecipeScore(recipe.name, None, (), worst, math.nan, False, True, 0.0, None, True)
        cost = float(found["seconds"]) / float(found.get("reference_seconds", run_seconds))
    else:
        cost = 0.0 if recipe.optimizer == PROBLEM_OPTIMIZER else 1.0
    lr = recipe_lr(recipe, problem, finders)
    if lr is None:  # the rule gave no lr: a miss with the worst score
        scores = tuple(worst for _ in seeds)
        r = regret(metric, best.mean, worst)
        return RecipeScore(recipe.name, None, scores, worst, r, False, True, cost)
    records = [runs.get((recipe.optimizer, lr, s)) for s in seeds]
    if any(r is None for r in records):
        return RecipeScore(recipe.name, lr, (), worst, math.nan, False, False, cost, None, True)
    done = [r for r in records if r is not None]
    scores = tuple(score_of(r, metric, problem.score_constant()) for r in done)
    mean = mean_of(scores)
    r = regret(metric, best.mean, mean)
    diverged = any(rec["status"] != "done" for rec in done)
    effective = [rec["effective_lr"] for rec in done if rec.get("effective_lr") is not None]
    return RecipeScore(
        recipe=recipe.name,
        lr=lr,
        scores=scores,
        mean=mean,
        regret=r,
        within_noise=not diverged and r <= noise,
        miss=diverged,
        cost=cost,
        effective_lr=mean_of(effective) if effective else None,
    )


@dataclass(frozen=True)
class RecipeSummary:
    recipe: str
    problems: int
    within_noise: int
    misses: int
    median_regret: float
    mean_regret: float
    worst_regret: float
    median_cost: float


def summarise(scores: Sequence[ProblemScore], recipe: str) -> RecipeSummary | None:
    """One recipe over a set of problems (those where it has a score)."""
    rows = [s.recipes[recipe] for s in scores if recipe in s.recipes]
    rows = [r for r in rows if not r.pending]
    if not rows:
        return None
    regrets = [r.regret for r in rows]
    return RecipeSummary(
        recipe=recipe,
        problems=len(rows),
        within_noise=sum(r.within_noise for r in rows),
        misses=sum(r.miss for r in rows),
        median_regret=statistics.median(regrets),
        mean_regret=mean_of(regrets),
        worst_regret=max(regrets),
        median_cost=statistics.median(r.cost for r in rows),
    )
