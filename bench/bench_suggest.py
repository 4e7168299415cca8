"""How often is a learning-rate recipe right? A benchmark of lrkit's range-test rules,
``lrkit advise``, torch-lr-finder, fastai's recipe, the conventional default and three
optimizers that claim to need no learning rate, against a grid of fixed learning rates.

The question each recipe answers: which fixed learning rate trains this model best in this
budget? The ground truth is a grid of fixed learning rates (1, 2, 5 x 10^k), each trained
for the problem's budget with seeds 0 and 1 (``suggest_problems.py``: nine tuning problems;
three held out, and four fresh sets of two, three, three and three added after advise was
fixed, each reported apart; ``suggest_training.py``: the one training protocol;
``suggest_recipes.py``: the recipes). Each recipe's lr is trained with the same seeds
(a grid run is reused when the lr equals a grid lr exactly).

A problem may carry the user's recipe (issue 27): a warm-up and a schedule over the budget,
an optimizer by import path with its arguments. Its grid is then of peak lrs, and every run
of it, the grid's and each recipe's, trains under that recipe (the lr a recipe gives is the
peak). Six such variants of tuning problems make the scheduled tuning set (role tuning;
summarised with the tuning set and also on their own). Fresh set 5 (``suggest_fresh5.py``,
six problems with recipes) is run once, at the end of issue 27: it is left out of every run
(the default problems, ``--problems`` and ``--quick``) unless ``--include-fresh5`` is given.

Scores (the definitions; ``suggest_scores.py`` implements them):

- score of a run: the final check's validation accuracy (metric accuracy) or validation
  loss (metric loss); a run that diverged scores 0 accuracy or an infinite loss.
- best grid lr: the grid lr with the best mean score over the seeds (the lowest such lr on
  a tie); best = that mean.
- regret of a recipe, from its mean score m over the same seeds: best - m (accuracy), or
  log(m / best) (loss: a log ratio, so that a regression fitted almost exactly cannot
  outweigh the other problems in a mean; 2x the best loss is 0.69). Both are unitless and
  >= 0 when the recipe is worse (< 0 when it beats every grid lr).
- within noise: regret <= max(2 x sd, floor), sd the seeds' sample standard deviation at
  the best grid lr in regret's units (sd for accuracy, log(1 + 2 sd / best) for loss), floor
  0.003 accuracy or log(1.02) (2% above the best loss); never for a recipe whose lr
  diverged on any seed.
- a miss: a recipe that gave no lr (a rule that returned None: it scores the worst, 0 or
  inf) or whose lr diverged on a seed.
- cost: the recipe's own wall time (its range test, its race) divided by the wall time of
  one training run of the budget at the conventional default lr, timed right after it in the
  same worker (side by side, so that a finder rerun on a faster or slower day is not set
  against grid runs timed another day; the median grid run where a cached finder has no such
  run); 0 for the default, 1.0 for the learning-rate-free optimizers (their run is the
  training).
- per recipe, over the tuning set and, apart, the held-out and fresh sets: problems within noise
  (k of n), misses, the median, mean and worst regret, and the median cost.

Runs are cached per problem in ``bench/results/suggest/<problem>.json``: a rerun (or a run
after a crash) does only what is missing. The work runs in worker processes (one thread
each), the main process being the only writer.

``--recipes grid`` runs the grid alone (no finder, no lr-free optimizer).

Usage: python bench/bench_suggest.py [--quick] [--problems a,b] [--recipes r,s] [--redo r,s]
       [--seeds 0,1] [--data-dir DIR] [--out FILE] [--cache-dir DIR] [--workers 2]
       [--include-fresh5] [--list]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import signal
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from machine import machine
from suggest_problems import Problem, problems
from suggest_recipes import RECIPES, Recipe, advise_available, recipe_lr, run_finder
from suggest_scores import ProblemScore, RunKey, score_problem, summarise
from suggest_training import PROBLEM_OPTIMIZER, train_run

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_MNIST = HERE.parent.parent / "shared" / "data" / "mnist"
SEEDS = (0, 1)
QUICK_PROBLEMS = ("sine-141", "textbook-b128", "mnist-logistic")
QUICK_FALLBACK = "pointer-transformer"
"""The third quick problem when MNIST is absent."""
GRID_ONLY = "grid"
"""``--recipes grid``: the grid's runs alone."""


# --- the cache: one JSON file per problem ------------------------------------------------


def finite_or_none(value: Any) -> Any:
    """The document with every nan and inf as null (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(finite_or_none(document), indent=1, allow_nan=False) + "\n")
    os.replace(partial, path)  # a crash mid-write leaves the last complete file


def problem_fields(problem: Problem) -> dict[str, Any]:
    return {
        "name": problem.name,
        "held_out": problem.held_out,
        "role": problem.role,
        "grid": list(problem.grid),
        "eval_every": problem.eval_every,
        **problem.signature(),
    }


class ProblemCache:
    """The runs and finder results of one problem, kept in ``path``. A run or finder that
    failed (raised) is kept apart, under ``failures``, and not loaded again, so a rerun tries
    it again; a file whose problem signature differs (the model, data or budget changed) is
    started afresh."""

    def __init__(self, path: Path, problem: Problem) -> None:
        self.path, self.problem = path, problem
        self.runs: dict[RunKey, dict[str, Any]] = {}
        self.finders: dict[str, dict[str, Any]] = {}
        self.failures: list[dict[str, Any]] = []
        self.stale = False
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("signature") != finite_or_none(problem.signature()):
                self.stale = True
                return
            for record in stored.get("runs", []):
                if record.get("status") in ("done", "diverged"):
                    self.runs[run_key(record)] = record
            for name, found in stored.get("finders", {}).items():
                if found.get("status") == "done":
                    self.finders[name] = found

    def forget(self, recipe: Recipe) -> None:
        """Drop what ``recipe`` cached of its own (its finder's result, or the runs of its
        lr-free optimizer), so that it runs again; the grid's runs are kept."""
        if recipe.finder is not None:
            self.finders.pop(recipe.finder, None)
        elif recipe.optimizer != PROBLEM_OPTIMIZER:
            self.runs = {k: r for k, r in self.runs.items() if k[0] != recipe.optimizer}

    def add(self, task: Task, result: dict[str, Any]) -> None:
        if result.get("status") == "failed":
            self.failures.append({"task": task.describe(), **result})
        elif task.kind == "run":
            self.runs[task.run_key] = result
        else:
            self.finders[task.finder] = result
        self.save()

    def save(self) -> None:
        write_json(
            self.path,
            {
                "problem": problem_fields(self.problem),
                "signature": self.problem.signature(),
                "finders": self.finders,
                "failures": self.failures,
                "runs": sorted(
                    self.runs.values(), key=lambda r: (r["optimizer"], r["lr"], r["seed"])
                ),
            },
        )


def run_key(record: dict[str, Any]) -> RunKey:
    return (str(record["optimizer"]), float(record["lr"]), int(record["seed"]))


# --- the work: tasks run in worker processes ---------------------------------------------


@dataclass(frozen=True)
class Task:
    """One unit of work: a training run, or a finder (a recipe's range test, race, ...)."""

    problem: str
    kind: str
    """run or finder."""
    mnist_dir: str | None
    optimizer: str = PROBLEM_OPTIMIZER
    lr: float = 0.0
    seed: int = 0
    finder: str = ""

    @property
    def run_key(self) -> RunKey:
        return (self.optimizer, self.lr, self.seed)

    def describe(self) -> str:
        if self.kind == "finder":
            return f"{self.problem} finder {self.finder}"
        what = "lr" if self.optimizer == PROBLEM_OPTIMIZER else self.optimizer + " lr"
        return f"{self.problem} {what} {self.lr:.4g} seed {self.seed}"


def init_worker() -> None:
    import torch

    # Ctrl-C is the main process's to handle: it lets the running tasks finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


@functools.lru_cache(maxsize=3)
def problem_and_data(name: str, mnist_dir: str | None) -> tuple[Problem, Any, Any]:
    problem = problems(Path(mnist_dir) if mnist_dir else None)[name]
    train, val = problem.make_data()
    return problem, train, val


def run_task(task: Task) -> dict[str, Any]:
    """In a worker: do the task and give back its record."""
    problem, train, val = problem_and_data(task.problem, task.mnist_dir)
    if task.kind == "finder":
        return run_finder(task.finder, problem, train, val)
    return train_run(problem, train, val, task.optimizer, task.lr, task.seed)


@dataclass(frozen=True)
class Plan:
    """What to run: the problems with their grids, the recipes, the seeds."""

    problems: tuple[Problem, ...]
    grids: dict[str, tuple[float, ...]]
    recipes: tuple[Recipe, ...]
    seeds: tuple[int, ...]
    mnist_dir: str | None


def wanted_finders(plan: Plan, cache: ProblemCache) -> list[Task]:
    names = dict.fromkeys(r.finder for r in plan.recipes if r.finder is not None)
    return [
        Task(cache.problem.name, "finder", plan.mnist_dir, finder=name)
        for name in names
        if name not in cache.finders
    ]


def wanted_runs(plan: Plan, cache: ProblemCache) -> list[Task]:
    """The runs not yet cached that the grid and every recipe with a known lr need."""
    problem = cache.problem
    keys: list[RunKey] = []
    for recipe in plan.recipes:
        lr = recipe_lr(recipe, problem, cache.finders)
        if lr is not None:
            keys += [(recipe.optimizer, lr, s) for s in plan.seeds]
    keys += [(PROBLEM_OPTIMIZER, lr, s) for lr in plan.grids[problem.name] for s in plan.seeds]
    missing = [k for k in dict.fromkeys(keys) if k not in cache.runs]
    return [Task(problem.name, "run", plan.mnist_dir, o, lr, s) for o, lr, s in missing]


def run_plan(plan: Plan, caches: dict[str, ProblemCache], workers: int) -> None:
    """Run every missing task; the caches are written as each result comes back.

    Ctrl-C cancels the tasks not yet started and waits for the running ones, whose results
    are kept (the workers ignore SIGINT, so a run is never cut short); a second Ctrl-C
    leaves at once. Run again, the benchmark does what is left."""
    queued: set[Task] = set()
    pending: dict[Future[dict[str, Any]], Task] = {}
    finished = 0
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker)

    def submit(tasks: list[Task]) -> None:
        for task in tasks:
            if task not in queued:
                queued.add(task)
                pending[pool.submit(run_task, task)] = task

    def collect(future: Future[dict[str, Any]]) -> Task:
        nonlocal finished
        task = pending.pop(future)
        result = future.result()
        cache = caches[task.problem]
        cache.add(task, result)
        finished += 1
        print(
            f"[{finished}/{len(queued)} {time.perf_counter() - started:6.0f} s] "
            f"{task.describe()}: {outcome_text(cache.problem, task, result)}",
            flush=True,
        )
        return task

    try:
        # Finders first: they are the longest tasks and their lrs add runs.
        for problem in plan.problems:
            submit(wanted_finders(plan, caches[problem.name]))
        for problem in plan.problems:
            submit(wanted_runs(plan, caches[problem.name]))
        if not pending:
            print("every run is cached")
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = collect(future)
                if task.kind == "finder":
                    submit(wanted_runs(plan, caches[task.problem]))
    except KeyboardInterrupt:
        for future in list(pending):
            if future.cancel():
                pending.pop(future)
        print(
            f"\ninterrupted: finishing the {len(pending)} running tasks, whose results are kept "
            "(Ctrl-C again to leave now); run again to do the rest",
            flush=True,
        )
        try:
            for future in list(pending):
                wait([future])
                collect(future)
        except KeyboardInterrupt:
            os._exit(130)  # the workers finish their task and exit on their own
        pool.shutdown()
        raise SystemExit(130) from None
    pool.shutdown()


def outcome_text(problem: Problem, task: Task, result: dict[str, Any]) -> str:
    if result.get("status") == "failed":
        return f"FAILED ({result.get('error')})"
    if task.kind == "finder":
        lrs = ", ".join(f"{k} {fmt_lr(v)}" for k, v in result["lrs"].items())
        return f"{lrs} ({result['seconds']:.1f} s)"
    value = fmt_value(result["score"])
    return f"{result['status']}, {problem.metric} {value} ({result['seconds']:.1f} s)"


# --- output ----------------------------------------------------------------------------


def fmt_lr(lr: float | None) -> str:
    return "none" if lr is None else f"{lr:.3g}"


def fmt_value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "inf" if value is not None and value > 0 else "-"
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def recipe_text(problem: Problem) -> str:
    """The optimizer and, on a scheduled problem, its recipe: ``momentum``,
    ``torch.optim:AdamW {"betas": [0.9, 0.95]}, cosine after a 0.05 warm-up``."""
    text = problem.optimizer
    if problem.optimizer_args:
        text += f" {problem.optimizer_args}"
    if problem.scheduled:
        text += f", {problem.lr_recipe.label()}"
    return text


def print_problem(problem: Problem, score: ProblemScore, plan: Plan) -> None:
    role = problem.role
    print()
    print(
        f"== {problem.name} ({role}; {problem.kind}; {recipe_text(problem)}, batch "
        f"{problem.batch_size}, {problem.epochs:g} epochs; {problem.metric}; one run "
        f"{score.run_seconds:.1f} s)"
    )
    print(f"   {'lr':>8} {'mean':>10} {'sd':>8}  seeds")
    for point in score.grid:
        mark = "*" if point is score.best else " "
        seeds = " ".join(fmt_value(s) for s in point.scores)
        extra = f"  ({point.diverged} diverged)" if point.diverged else ""
        print(
            f"  {mark}{point.lr:8.3g} {fmt_value(point.mean):>10} {point.sd:8.4f}  {seeds}{extra}"
        )
    best = score.best
    edge = "  AT THE GRID'S EDGE: widen the grid" if score.at_edge else ""
    print(
        f"   best grid lr {best.lr:g}: {problem.metric} {fmt_value(best.mean)}; within noise: "
        f"regret <= {score.noise:.4f}{edge}"
    )
    print(
        f"   {'recipe':<32} {'lr':>9} {problem.metric:>10} {'regret':>8} {'within':>6} "
        f"{'cost x':>7}"
    )
    for recipe in plan.recipes:
        r = score.recipes[recipe.name]
        if r.pending:
            print(f"   {recipe.label:<32} (missing: failed or not run yet)")
            continue
        note = f"  d*lr {r.effective_lr:.3g}" if r.effective_lr is not None else ""
        note += "  diverged" if r.miss and r.lr is not None else ""
        note += "  no lr" if r.lr is None else ""
        print(
            f"   {recipe.label:<32} {fmt_lr(r.lr):>9} {fmt_value(r.mean):>10} "
            f"{fmt_value(r.regret):>8} {'yes' if r.within_noise else 'no':>6} {r.cost:7.1f}{note}"
        )


def print_summary(title: str, scores: list[ProblemScore], plan: Plan) -> list[dict[str, Any]]:
    rows = []
    print()
    print(f"== {title} ({len(scores)} problems)")
    if not scores:
        return rows
    print(
        f"   {'recipe':<32} {'within noise':>12} {'misses':>6} {'median regret':>13} "
        f"{'mean regret':>11} {'worst regret':>12} {'cost x':>7}"
    )
    for recipe in plan.recipes:
        s = summarise(scores, recipe.name)
        if s is None:
            continue
        rows.append(asdict(s))
        print(
            f"   {recipe.label:<32} {f'{s.within_noise} of {s.problems}':>12} {s.misses:>6} "
            f"{fmt_value(s.median_regret):>13} {fmt_value(s.mean_regret):>11} "
            f"{fmt_value(s.worst_regret):>12} {s.median_cost:7.1f}"
        )
    return rows


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in (
        "lrkit",
        "torch",
        "numpy",
        "torch-lr-finder",
        "prodigyopt",
        "dadaptation",
        "schedulefree",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["lrkit_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["lrkit_commit"] = None
    return out


# --- choosing what to run ----------------------------------------------------------------


def quick_grid(grid: tuple[float, ...]) -> tuple[float, ...]:
    """Three lrs a decade apart around the middle of the grid."""
    middle = len(grid) // 2
    return (grid[max(middle - 3, 0)], grid[middle], grid[min(middle + 3, len(grid) - 1)])


def resolve_mnist(data_dir: Path | None) -> Path | None:
    """--data-dir, else $LRKIT_DATA_DIR, else ../shared/data/mnist; None when absent."""
    folder = data_dir or (
        Path(os.environ["LRKIT_DATA_DIR"]) if os.environ.get("LRKIT_DATA_DIR") else DEFAULT_MNIST
    )
    return (
        folder
        if (folder / "train-images-idx3-ubyte.gz").is_file()
        or (folder / "train-images-idx3-ubyte").is_file()
        else None
    )


def parse_names(
    parser: argparse.ArgumentParser, option: str, text: str | None, known: list[str]
) -> list[str] | None:
    """The names of a comma-separated option, each checked (exit 2 naming the bad one)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        parser.error(
            f"{option}: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}"
        )
    return names


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", help="comma-separated problem names (default: all)")
    parser.add_argument("--recipes", help="comma-separated recipe names (default: all)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 3 small problems, 3 grid lrs, 1 seed"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="the MNIST IDX folder")
    parser.add_argument("--out", type=Path, default=None, help="the summary JSON")
    parser.add_argument("--cache-dir", type=Path, default=None, help="one JSON per problem")
    parser.add_argument(
        "--redo",
        help="comma-separated recipes whose cached finder results (or lr-free runs) are "
        "dropped and run again, e.g. after lrkit's range test or advise changed",
    )
    parser.add_argument("--seeds", help="comma-separated seeds (default 0,1; with --quick 0)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one thread each)")
    parser.add_argument(
        "--include-fresh5",
        action="store_true",
        help="let fresh set 5 run (it is run once, at the end of issue 27; left out otherwise)",
    )
    parser.add_argument("--list", action="store_true", help="list the problems and stop")
    args = parser.parse_args()

    mnist_dir = resolve_mnist(args.data_dir)
    registry = problems(mnist_dir)
    if args.list:
        for p in registry.values():
            grid = f"{p.grid[0]:g}..{p.grid[-1]:g} ({len(p.grid)})"
            role = p.role
            print(
                f"{p.name:<28} {role:<8} {p.kind:<23} {p.optimizer:<8} b{p.batch_size:<4} "
                f"{p.epochs:>4g} ep  {p.metric:<8} {grid:<18} {p.model}"
                + (f"; {recipe_text(p)}" if p.recipe_fields() else "")
            )
        return
    notes: list[str] = []
    chosen = parse_names(parser, "--problems", args.problems, list(registry))
    if chosen is None:
        chosen = list(QUICK_PROBLEMS) if args.quick else list(registry)
        if not args.include_fresh5:
            chosen = [n for n in chosen if registry[n].fresh != 5]
    elif not args.include_fresh5 and (fresh5 := [n for n in chosen if registry[n].fresh == 5]):
        parser.error(
            f"--problems: {', '.join(fresh5)} in fresh set 5, which is run once, at the end "
            "of issue 27: give --include-fresh5 to run it"
        )
    if mnist_dir is None:
        skipped = [n for n in chosen if registry[n].needs_mnist]
        if skipped:
            where = args.data_dir or os.environ.get("LRKIT_DATA_DIR") or DEFAULT_MNIST
            notes.append(f"no MNIST IDX files in {where}: skipped {', '.join(skipped)}")
            chosen = [n for n in chosen if not registry[n].needs_mnist]
            if args.quick and args.problems is None:
                chosen.append(QUICK_FALLBACK)
    recipe_names = parse_names(parser, "--recipes", args.recipes, [GRID_ONLY, *RECIPES]) or list(
        RECIPES
    )
    recipe_names = [n for n in recipe_names if n != GRID_ONLY]
    if "advise" in recipe_names and (why := advise_available()) is not None:
        notes.append(f"the advise recipe is left out: {why}")
        recipe_names.remove("advise")
    for note in notes:
        print(f"note: {note}")
    if not chosen:
        raise SystemExit("no problem left to run")

    if args.seeds is not None:
        try:
            seeds = tuple(int(s) for s in args.seeds.split(","))
        except ValueError:
            parser.error(f"--seeds {args.seeds}: give whole numbers, e.g. 0,1")
    else:
        seeds = (0,) if args.quick else SEEDS
    suffix = "_quick" if args.quick else ""
    out = args.out or RESULTS / f"bench_suggest{suffix}.json"
    cache_dir = args.cache_dir or RESULTS / f"suggest{suffix}"
    selected = tuple(registry[n] for n in chosen)
    plan = Plan(
        problems=selected,
        grids={p.name: quick_grid(p.grid) if args.quick else p.grid for p in selected},
        recipes=tuple(RECIPES[n] for n in recipe_names),
        seeds=seeds,
        mnist_dir=str(mnist_dir) if mnist_dir else None,
    )
    caches = {p.name: ProblemCache(cache_dir / f"{p.name}.json", p) for p in selected}
    for name in parse_names(parser, "--redo", args.redo, list(RECIPES)) or []:
        for cache in caches.values():
            cache.forget(RECIPES[name])
    for cache in caches.values():
        if cache.stale:
            print(
                f"note: {cache.path} is for another version of {cache.problem.name}: "
                "starting afresh"
            )
    run_plan(plan, caches, args.workers)

    scores: dict[str, ProblemScore] = {}
    for problem in selected:
        cache = caches[problem.name]
        score = score_problem(
            problem, plan.grids[problem.name], plan.seeds, cache.runs, cache.finders, plan.recipes
        )
        if score is None:
            print(f"\n== {problem.name}: grid runs are missing (see the failures above)")
            continue
        scores[problem.name] = score
        print_problem(problem, score, plan)
    roles = {name: registry[name].role for name in scores}
    tuning = [s for s in scores.values() if roles[s.problem] == "tuning"]
    held_out = [s for s in scores.values() if roles[s.problem] == "held out"]
    summary = {
        "tuning": print_summary("summary: tuning set", tuning, plan),
        "held_out": print_summary("summary: held-out set (not used for tuning)", held_out, plan),
    }
    scheduled = [s for s in tuning if registry[s.problem].scheduled]
    if scheduled:
        summary["tuning_scheduled"] = print_summary(
            "summary: the tuning set's scheduled problems", scheduled, plan
        )
    for number, title in (
        (1, "first fresh set (added after advise's race was fixed; led to its edge rule)"),
        (2, "second fresh set (added after the edge rule was fixed, run once)"),
        (3, "third fresh set (chosen before the horizon work, run once before the correction)"),
        (4, "fourth fresh set (chosen before the horizon correction was written, run once)"),
        (5, "fifth fresh set (chosen before issue 27's code, run once at its end)"),
    ):
        fresh = [s for s in scores.values() if roles[s.problem] == f"fresh {number}"]
        if fresh:
            summary[f"fresh_{number}"] = print_summary(f"summary: {title}", fresh, plan)
    others = [s for s in scores.values() if roles[s.problem] != "tuning"]
    if others and len(others) < len(scores):
        summary["not_tuning"] = print_summary("summary: every set but the tuning set", others, plan)
    at_edge = [s.problem for s in scores.values() if s.at_edge]
    if at_edge and not args.quick:
        print(f"\nwarning: the best grid lr is at an end of the grid for {', '.join(at_edge)}")

    document = {
        "benchmark": "bench_suggest",
        "machine": machine(),
        "versions": versions(),
        "settings": {
            "quick": args.quick,
            "seeds": list(plan.seeds),
            "recipes": {r.name: r.label for r in plan.recipes},
            "workers": args.workers,
            "torch_threads_per_worker": 1,
        },
        "notes": notes,
        "summary": summary,
        "problems": {
            p.name: {
                "problem": problem_fields(p),
                "grid_used": list(plan.grids[p.name]),
                "score": asdict(scores[p.name]) if p.name in scores else None,
                "finders": caches[p.name].finders,
                "failures": caches[p.name].failures,
                "runs": list(caches[p.name].runs.values()),
            }
            for p in selected
        },
    }
    write_json(out, document)
    print(f"\nwrote {out} (runs cached in {cache_dir})")


if __name__ == "__main__":
    main()
