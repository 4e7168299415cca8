"""The recipes of ``bench_suggest.py``: each answers "which fixed learning rate?" for a
problem (on a scheduled problem: which peak lr of the problem's recipe; every lr a recipe
gives is trained under that recipe, as the grid is, ``suggest_training.train_run``), or, for
the optimizers that claim to need none, trains in place of the problem's optimizer.

Every finder that builds an optimizer builds the problem's (a name or ``module:Class``, with
its ``optimizer_args``); the range tests themselves move the lr as their programs say, not
by the problem's schedule.

A *finder* runs once per problem and gives one or more recipes' learning rates:

- ``lrkit``: one ``lrkit.find_lr`` as ``lrkit find`` runs it (the range test's defaults, two
  rounds) with the problem's optimizer and loss and ``eval_data=val.head(1000)``; its
  ``suggestions`` give the four rules' recipes (turning_point, valley, steepest, minimum).
- ``torch-lr-finder``: torch-lr-finder 0.2.2 as its README runs it: the optimizer at lr 1e-7,
  ``range_test(train_loader, end_lr=100, num_iter=100)`` (exponential steps, its defaults
  otherwise: smoothing 0.05, stop at 5x the best loss), then ``plot(suggest_lr=True)``, whose
  suggestion is the steepest gradient of the loss between the first 10 and the last 5 points
  (fewer than 17 points: it raises, and the recipe gives no lr). The loader shuffles the
  training data at the problem's batch size with a generator seeded 0.
- ``fastai``: fastai's ``Learner.lr_find()`` written from its documentation and source
  (fastai is not installed): lr_i = 1e-7 * (10 / 1e-7) ** (i / 100) for i = 0..99, the
  bias-corrected smoothed loss (beta 0.98), stop once it exceeds 4x its minimum, drop the
  first ``num_it // 10`` and the last 5 points, suggest ``valley`` (the middle of the
  longest descent). lrkit's pieces do the work: ``find_lr`` with that exponential program,
  one round, the smoothed curve and ``diverge_factor=4``, no evaluation data; lrkit's
  ``valley`` then reads the trimmed curve.
- ``held-sweep``: the range test ``lrkit advise`` runs (``advise.driver.range_test_settings``:
  an exponential sweep from 1e-6, each lr held 8 iterations and measured on 256 held-out
  examples), read by the default rule, turning_point: the program that part 3 of the issue
  compares with the textbook's, on its own.
- ``advise``: ``lrkit.advise.advise`` with the problem's budget, batch size, optimizer and
  metric, seed 100 (none of the grid's), one worker; on a problem with a recipe (an
  optimizer's arguments, a schedule or a warm-up) also its ``optimizer_args``, ``schedule``
  and ``warmup``, and advise's lr is the recipe's peak.

The conventional default needs no finder: 0.01 for sgd and momentum, 1e-3 for adam and
adamw, and for an optimizer by import path the lr its class defaults to (its ``__init__``'s).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lrkit.data.tensors import TensorData
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.programs import exponential_range
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.rangetest.suggestions import valley
from lrkit.training.optimizers import optimizer_class
from suggest_problems import Problem
from suggest_training import (
    LR_FREE_GIVEN,
    PROBLEM_OPTIMIZER,
    budget_steps,
    build_model,
    problem_optimizer,
    seeded_model_factory,
    train_run,
)

RANGE_TEST_EVAL_EXAMPLES = 1000
"""``eval_data=val.head(1000)`` for lrkit's range test."""
FASTAI_START, FASTAI_END, FASTAI_ITERATIONS = 1e-7, 10.0, 100
FASTAI_SKIP_START, FASTAI_SKIP_END = FASTAI_ITERATIONS // 10, 5
ADVISE_SEED = 100
"""The seed ``advise`` is given: none of the grid's seeds, so that its race does not rerun
the very runs (same weights, same data order) that the ground truth averages."""
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3}


@dataclass(frozen=True)
class Recipe:
    """One row of the tables: where its lr comes from, and which optimizer trains it."""

    name: str
    label: str
    finder: str | None
    """The finder whose result gives the lr (None: ``default`` or an lr-free optimizer)."""
    key: str | None
    """The key of the finder's ``lrs``."""
    optimizer: str = PROBLEM_OPTIMIZER


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("turning_point", "lrkit turning_point", "lrkit", "turning_point"),
        Recipe("valley", "lrkit valley", "lrkit", "valley"),
        Recipe("steepest", "lrkit steepest", "lrkit", "steepest"),
        Recipe("minimum", "lrkit minimum", "lrkit", "minimum"),
        Recipe("held-sweep", "lrkit turning_point (advise's sweep)", "held-sweep", "turning_point"),
        Recipe("advise", "lrkit advise", "advise", "lr"),
        Recipe("torch-lr-finder", "torch-lr-finder steepest", "torch-lr-finder", "steepest"),
        Recipe("fastai", "fastai valley", "fastai", "valley"),
        Recipe("default", "default 0.01 / 1e-3", None, None),
        Recipe("prodigy", "Prodigy (lr 1)", None, None, optimizer="prodigy"),
        Recipe("dadaptation", "D-Adapt Adam (lr 1)", None, None, optimizer="dadaptation"),
        Recipe(
            "schedulefree", "Schedule-Free AdamW (lr 2.5e-3)", None, None, optimizer="schedulefree"
        ),
    )
}


def recipe_lr(recipe: Recipe, problem: Problem, finders: dict[str, Any]) -> float | None:
    """The lr the recipe trains at (what an lr-free optimizer is given); None where its
    finder has not run yet or gave none."""
    if recipe.optimizer != PROBLEM_OPTIMIZER:
        return LR_FREE_GIVEN[recipe.optimizer]
    if recipe.finder is None:
        return default_lr(problem)
    found = finders.get(recipe.finder)
    if found is None or found.get("status") != "done":
        return None
    lr = found["lrs"].get(recipe.key)
    return None if lr is None else float(lr)


def default_lr(problem: Problem) -> float:
    """The conventional default lr of the problem's optimizer: ``DEFAULT_LR`` for a name, the
    class's own default for ``module:Class``."""
    if problem.optimizer in DEFAULT_LR:
        return DEFAULT_LR[problem.optimizer]
    lr = inspect.signature(optimizer_class(problem.optimizer)).parameters["lr"].default
    if not isinstance(lr, (int, float)):
        raise ValueError(f"{problem.optimizer} has no default lr")
    return float(lr)


def advise_available() -> str | None:
    """None when ``lrkit.advise`` can be imported, else why not."""
    try:
        from lrkit.advise import AdviseSettings, advise  # noqa: F401
    except ImportError as error:
        return f"lrkit.advise is not importable ({error})"
    return None


# --- the finders ----------------------------------------------------------------------


def lrkit_rules(problem: Problem, train: TensorData, val: TensorData) -> dict[str, Any]:
    model = build_model(problem, 0)
    optimizer = problem_optimizer(problem, model, 1e-4)
    settings = RangeTestSettings(batch_size=problem.batch_size, rounds=2)
    started = time.perf_counter()
    result = find_lr(
        model,
        train,
        settings,
        optimizer=optimizer,
        loss_fn=problem.loss_fn,
        eval_data=val.head(RANGE_TEST_EVAL_EXAMPLES),
    )
    seconds = time.perf_counter() - started
    return {
        "lrs": dict(result.suggestions),
        "seconds": seconds,
        "details": {
            "engine": result.engine,
            "diverged_at": result.diverged_at,
            "rounds": [
                {
                    "program": r.record.program,
                    "curve": r.curve,
                    "curve_lrs": list(r.curve_lrs),
                    "curve_losses": list(r.curve_losses),
                    "suggestions": dict(r.suggestions),
                    "stop_reason": r.record.stop_reason,
                    "iterations": len(r.record.points),
                }
                for r in result.rounds
            ],
        },
    }


def lrkit_held_sweep(problem: Problem, train: TensorData, val: TensorData) -> dict[str, Any]:
    """The range test that ``lrkit advise`` runs (an exponential sweep, each lr held and
    measured on held-out examples), read by the default rule: the program part 3 of the
    benchmark compares with the textbook's."""
    from lrkit.advise.driver import EVAL_EXAMPLES, range_test_settings
    from lrkit.advise.settings import AdviseSettings

    steps = budget_steps(problem, len(train))
    advise = AdviseSettings(epochs=problem.epochs, batch_size=problem.batch_size, seed=0)
    settings = range_test_settings(advise, steps)
    model = build_model(problem, 0)
    optimizer = problem_optimizer(problem, model, settings.lr_program.lrs[0])
    started = time.perf_counter()
    result = find_lr(
        model,
        train,
        settings,
        optimizer=optimizer,
        loss_fn=problem.loss_fn,
        eval_data=val.head(EVAL_EXAMPLES),
    )
    return {
        "lrs": dict(result.suggestions),
        "seconds": time.perf_counter() - started,
        "details": {"program": result.rounds[0].record.program, "iterations": steps},
    }


def torch_lr_finder(problem: Problem, train: TensorData, val: TensorData) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    model = build_model(problem, 0)
    optimizer = problem_optimizer(problem, model, 1e-7)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train.x, train.y),
        batch_size=problem.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    figure, axes = plt.subplots()
    # Its progress bar and messages go to a buffer, not into the benchmark's output.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        started = time.perf_counter()
        finder = LRFinder(model, optimizer, problem.loss_fn, device="cpu")
        finder.range_test(loader, end_lr=100, num_iter=100)
        try:
            _, lr = finder.plot(ax=axes, suggest_lr=True)
            note = None
        except RuntimeError as error:  # too few points before it stopped
            lr, note = None, str(error)
        finder.reset()
        seconds = time.perf_counter() - started
    plt.close(figure)
    return {
        "lrs": {"steepest": None if lr is None else float(lr)},
        "seconds": seconds,
        "details": {
            "lr": [float(v) for v in finder.history["lr"]],
            "loss": [float(v) for v in finder.history["loss"]],
            "note": note,
        },
    }


def fastai_valley(problem: Problem, train: TensorData, val: TensorData) -> dict[str, Any]:
    model = build_model(problem, 0)
    optimizer = problem_optimizer(problem, model, FASTAI_START)
    # fastai's lrs: start * (end / start) ** (i / num_it), i = 0 .. num_it - 1.
    last = FASTAI_START * (FASTAI_END / FASTAI_START) ** (
        (FASTAI_ITERATIONS - 1) / FASTAI_ITERATIONS
    )
    settings = RangeTestSettings(
        batch_size=problem.batch_size,
        program=exponential_range(FASTAI_START, last, FASTAI_ITERATIONS),
        rounds=1,
        curve="smoothed",
        suggestion="valley",
        diverge_factor=4.0,
    )
    started = time.perf_counter()
    result = find_lr(model, train, settings, optimizer=optimizer, loss_fn=problem.loss_fn)
    points = result.rounds[0].record.points
    lrs = [p.lr for p in points][FASTAI_SKIP_START:-FASTAI_SKIP_END]
    losses = [p.smoothed_loss for p in points][FASTAI_SKIP_START:-FASTAI_SKIP_END]
    bad = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
    if bad:  # fastai drops the points from the first NaN on
        lrs, losses = lrs[: bad[0]], losses[: bad[0]]
    lr = valley(lrs, losses)
    seconds = time.perf_counter() - started
    return {
        "lrs": {"valley": lr},
        "seconds": seconds,
        "details": {
            "lr": [p.lr for p in points],
            "smoothed_loss": [p.smoothed_loss for p in points],
            "stop_reason": result.rounds[0].record.stop_reason,
            "valley_untrimmed": result.suggestions["valley"],
        },
    }


def lrkit_advise(problem: Problem, train: TensorData, val: TensorData) -> dict[str, Any]:
    from lrkit.advise import AdviseSettings, advise

    settings = AdviseSettings(
        epochs=problem.epochs,
        batch_size=problem.batch_size,
        optimizer=problem.optimizer,
        momentum=problem.momentum,
        weight_decay=problem.weight_decay,
        metric=problem.metric,
        seed=ADVISE_SEED,
        # The benchmark runs two tasks side by side, one a core; advise gets one core, as
        # every grid run does, so its cost is measured against them on equal terms.
        workers=1,
        optimizer_args=problem.optimizer_args or None,
        schedule=problem.schedule,
        warmup=problem.warmup,
    )
    result = advise(seeded_model_factory(problem), train, val, settings, loss_fn=problem.loss_fn)
    to_json = getattr(result, "to_json", None)
    return {
        "lrs": {"lr": None if result.lr is None else float(result.lr)},
        "seconds": float(result.seconds),
        "details": to_json() if callable(to_json) else None,
    }


Finder = Callable[[Problem, TensorData, TensorData], dict[str, Any]]
FINDERS: dict[str, Finder] = {
    "lrkit": lrkit_rules,
    "torch-lr-finder": torch_lr_finder,
    "fastai": fastai_valley,
    "held-sweep": lrkit_held_sweep,
    "advise": lrkit_advise,
}


def run_finder(name: str, problem: Problem, train: TensorData, val: TensorData) -> dict[str, Any]:
    """A finder's result with its status; one that raises is recorded as failed (and run
    again next time). With it, ``reference_seconds``: one training run of the budget at the
    conventional default lr, timed right after it in the same process, the unit of its cost
    (a finder rerun another day is not measured against grid runs timed on a machine that
    was faster or slower then)."""
    try:
        found = {"status": "done", **FINDERS[name](problem, train, val)}
    except Exception as error:
        return {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    reference = train_run(problem, train, val, PROBLEM_OPTIMIZER, default_lr(problem), ADVISE_SEED)
    if reference["status"] == "done":
        found["reference_seconds"] = reference["seconds"]
    return found
