"""A check of ``bench_suggest.py``'s runs on scheduled problems (bench code has no tests under
tests/): one grid run of each named problem, by ``suggest_training.train_run`` itself, with
the learning rate of every step recorded as the optimizer takes it, checked against the
problem's recipe.

For a budget of N steps (``budget_steps``: ceil(epochs * ceil(n_train / batch_size))), a
warm-up share w, W = round(w N), and the peak lr eta:

- exactly N steps are taken, and step t (0-based) trains at ``lr_recipe.build(eta, N)(t)``;
- with a warm-up, the lr rises linearly from 0 (step 0) and is eta at step W;
- the program ends with the budget: it is 0 at step N (one past the last), and the last
  step trains within 2% of eta of 0 (cosine: eta (1 + cos(pi (N - W - 1) / (N - W))) / 2;
  a linear decay or WSD's linear cooldown of D steps: eta / D);
- a problem without a recipe trains at eta at every step.

Usage: python bench/check_suggest_schedules.py [--problems a,b] [--lr 0.01] [--data-dir DIR]
(default: pointer-transformer-cosine and pointer-transformer, which need no MNIST).
Exits 1 on the first failed check.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path
from typing import Any

import torch

import suggest_training
from suggest_problems import Problem, problems
from suggest_training import PROBLEM_OPTIMIZER, budget_steps, train_run

END_TOLERANCE = 0.02
"""The last step's lr, as a share of the peak, at most."""


def recorded_lrs(problem: Problem, lr: float, seed: int = 0) -> tuple[list[float], int]:
    """The lr of every step of one grid run of ``problem`` at peak ``lr``, and the budget's
    steps N."""
    train, val = problem.make_data()
    seen: list[float] = []
    real_train_trial = suggest_training.train_trial

    def recording(model: Any, optimizer: torch.optim.Optimizer, *args: Any) -> Any:
        step = optimizer.step

        def record(*a: Any, **k: Any) -> Any:
            seen.append(float(optimizer.param_groups[0]["lr"]))
            return step(*a, **k)

        optimizer.step = record  # type: ignore[method-assign]
        return real_train_trial(model, optimizer, *args)

    suggest_training.train_trial = recording  # type: ignore[assignment]
    try:
        record = train_run(problem, train, val, PROBLEM_OPTIMIZER, lr, seed)
    finally:
        suggest_training.train_trial = real_train_trial
    if record["status"] != "done":
        raise SystemExit(f"{problem.name}: the run ended {record['status']}")
    return seen, budget_steps(problem, len(train))


def check(problem: Problem, lr: float) -> None:
    lrs, n = recorded_lrs(problem, lr)

    def require(ok: bool, what: str) -> None:
        if not ok:
            raise SystemExit(f"{problem.name}: FAILED: {what}")

    require(len(lrs) == n, f"{len(lrs)} steps taken, the budget has {n}")
    schedule = problem.lr_recipe.build(lr, n)
    if schedule is None:
        require(all(v == lr for v in lrs), "a constant-lr problem's lr moved")
        print(f"{problem.name}: constant lr {lr:g} at all {n} steps: ok")
        return
    wrong = [t for t, v in enumerate(lrs) if not math.isclose(v, schedule(t), rel_tol=1e-12)]
    require(not wrong, f"step {wrong[:1]} trained at another lr than the recipe's")
    w = problem.lr_recipe.warmup_iterations(n)
    if w:
        require(lrs[0] == 0.0, "the warm-up does not start at 0")
        require(math.isclose(lrs[w], lr), f"step W = {w} is at {lrs[w]:g}, not the peak {lr:g}")
        rising = all(a < b for a, b in itertools.pairwise(lrs[: w + 1]))
        require(rising, "the warm-up does not rise at every step")
    require(max(lrs) <= lr * (1 + 1e-12), "the lr goes above the peak")
    require(schedule(n) == 0.0, f"the program is at {schedule(n):g} at step N, not 0")
    require(lrs[-1] <= END_TOLERANCE * lr, f"the last step is at {lrs[-1]:g}, not near 0")
    print(
        f"{problem.name}: {n} steps, {problem.lr_recipe.label()}: lr(0) {lrs[0]:g}, "
        f"lr(W={w}) {lrs[w]:g}, lr(N/2) {lrs[n // 2]:.4g}, lr(N-1) {lrs[-1]:.3g} "
        f"(peak {lr:g}): ok"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", default="pointer-transformer-cosine,pointer-transformer")
    parser.add_argument("--lr", type=float, default=0.01, help="the peak lr of the run")
    parser.add_argument("--data-dir", type=Path, default=None, help="the MNIST IDX folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = problems(args.data_dir)
    for name in args.problems.split(","):
        check(registry[name], args.lr)


if __name__ == "__main__":
    main()
