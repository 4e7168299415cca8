"""The training protocol of ``bench_suggest.py``, one function for every run: the grid's, each
recipe's learning rate, and the optimizers that claim to need none.

A run of (problem, optimizer, lr, seed): the model is built under ``torch.manual_seed(seed)``
and trained by lrkit's plain loop, ``lrkit.training.loop.train_trial``, for the problem's
budget, reading the data in the order of ``seed``, with a check every ``epochs / 24`` epochs.
The problem's optimizer (a name or ``module:Class``, with the problem's ``optimizer_args``)
trains at a constant lr, or, on a scheduled problem, under the problem's recipe with ``lr``
its peak: ``lrkit.schedules.recipe.Recipe(schedule, warmup).build(lr, N)``, N the budget's
steps as the plan's clock counts them, ceil(epochs * ceil(n_train / batch_size)), the
schedule read at step t = 0 .. N - 1 (a linear warm-up from 0 over the first warm-up share,
then the schedule over the rest: a cosine reaches 0 at the budget's end). Its score is the
final check's validation accuracy (metric accuracy) or validation loss (metric loss); a run
that diverged scores 0 accuracy or an infinite loss (stored as null).

The learning-rate-free optimizers replace the problem's optimizer (its ``optimizer_args``
are not theirs), with the settings their READMEs give (lr 1.0 for Prodigy and D-Adaptation,
Schedule-Free's default 0.0025, the problem's weight decay):

- ``prodigy``: ``prodigyopt.Prodigy(params, lr=1.0, weight_decay=wd)`` (decoupled decay,
  its default);
- ``dadaptation``: ``dadaptation.DAdaptAdam(params, lr=1.0, weight_decay=wd,
  decouple=<the problem's optimizer is AdamW, by name or path>)``: its README asks for
  ``decouple=True`` in place of AdamW and leaves it off (Adam's L2 penalty) otherwise;
- ``schedulefree``: ``schedulefree.AdamWScheduleFree(params, lr=0.0025, weight_decay=wd)``,
  its defaults otherwise (no warm-up). It needs ``optimizer.train()`` "at the same place you
  call ``model.train()``" and ``optimizer.eval()`` where you call ``model.eval()``:
  :class:`ScheduleFreeModel` does exactly that when ``train_trial`` (or its evaluation)
  switches the model's mode, so the run takes the very steps, data order and checks of
  ``train_trial``; with BatchNorm, the README's fix is applied before every evaluation
  (50 training batches through the model at the averaged weights to refresh the running
  statistics).

On a scheduled problem: Prodigy and D-Adaptation train under the problem's recipe as a
multiplier of their lr 1.0, ``Recipe(schedule, warmup).build(1.0, N)`` (their READMEs
recommend a cosine schedule, the lr then the schedule's scale), Prodigy with
``safeguard_warmup=True`` where the recipe warms up (its README's option for a warm-up, which
would otherwise let it overestimate d); Schedule-Free takes the warm-up only, as its own
``warmup_steps=W`` (W = the recipe's warm-up steps, round(warmup N)), at its constant lr
0.0025 and with no decay (its README: no schedule is needed beyond the warm-up). Without a
warm-up both options are at their defaults (False, 0), as before.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.schedules.base import Schedule
from lrkit.training.loop import train_trial
from lrkit.training.optimizers import is_path, make_optimizer, optimizer_class
from lrkit.training.records import TrialOutcome, TrialPlan
from suggest_problems import Problem

PROBLEM_OPTIMIZER = "problem"
"""The optimizer name of a run that uses the problem's own optimizer at a given lr."""

SCHEDULEFREE_LR = 0.0025
"""``AdamWScheduleFree``'s documented default lr."""
LR_FREE_GIVEN = {"prodigy": 1.0, "dadaptation": 1.0, "schedulefree": SCHEDULEFREE_LR}
"""The lr each learning-rate-free optimizer is given."""
BATCH_NORM_CALIBRATION_BATCHES = 50
"""Schedule-Free's README: training batches run through a BatchNorm model before evaluation."""


def build_model(problem: Problem, seed: int) -> nn.Module:
    """The problem's model, built under ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return problem.make_model()


def seeded_model_factory(problem: Problem) -> Callable[[int], nn.Module]:
    """seed -> the model of ``build_model``, leaving the caller's global RNG as it was."""

    def make(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            return build_model(problem, seed)

    return make


def budget_steps(problem: Problem, n_train: int) -> int:
    """The steps of a run of the budget, as the plan's clock counts them:
    ceil(epochs * ceil(n_train / batch_size))."""
    return math.ceil(problem.epochs * math.ceil(n_train / problem.batch_size))


def problem_optimizer(problem: Problem, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The problem's optimizer (a name or ``module:Class``, with its ``optimizer_args``) over
    ``model`` at ``lr``."""
    return make_optimizer(
        problem.optimizer,
        model,
        lr,
        momentum=problem.momentum,
        weight_decay=problem.weight_decay,
        args=problem.optimizer_args or None,
    )


def decoupled(problem: Problem) -> bool:
    """Whether the problem's optimizer is AdamW (by name or by import path)."""
    if problem.optimizer == "adamw":
        return True
    return is_path(problem.optimizer) and issubclass(
        optimizer_class(problem.optimizer), torch.optim.AdamW
    )


def lr_free_optimizer(
    name: str, problem: Problem, model: nn.Module, steps: int
) -> torch.optim.Optimizer:
    """A learning-rate-free optimizer over ``model``, as its README sets it up; ``steps``,
    the budget's (Schedule-Free's warm-up is the problem's share of them)."""
    params, wd = model.parameters(), problem.weight_decay
    warmup = problem.lr_recipe.warmup_iterations(steps)  # 0 without a warm-up: the default
    # Prodigy and D-Adaptation print a line when weight decay is decoupled.
    with contextlib.redirect_stdout(io.StringIO()):
        if name == "prodigy":
            from prodigyopt import Prodigy

            return Prodigy(
                params, lr=LR_FREE_GIVEN[name], weight_decay=wd, safeguard_warmup=warmup > 0
            )
        if name == "dadaptation":
            from dadaptation import DAdaptAdam

            return DAdaptAdam(
                params,
                lr=LR_FREE_GIVEN[name],
                weight_decay=wd,
                decouple=decoupled(problem),
            )
        if name == "schedulefree":
            from schedulefree import AdamWScheduleFree

            return AdamWScheduleFree(
                params, lr=LR_FREE_GIVEN[name], weight_decay=wd, warmup_steps=warmup
            )
    raise ValueError(f"unknown learning-rate-free optimizer {name!r}")


class ScheduleFreeModel(nn.Module):
    """``inner``, whose mode switches also switch a Schedule-Free optimizer: ``train()`` puts
    the parameters at the gradient point y, ``eval()`` at the average x. With BatchNorm,
    ``eval()`` first runs ``calibration`` batches through the model in training mode at x
    (the README's fix), then evaluates with those running statistics."""

    def __init__(self, inner: nn.Module, calibration: list[torch.Tensor]) -> None:
        super().__init__()
        self.inner = inner
        self.calibration = calibration
        self.schedule_free: Any = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]

    def train(self, mode: bool = True) -> ScheduleFreeModel:
        if self.schedule_free is not None:
            if mode:
                self.schedule_free.train()
            else:
                self.schedule_free.eval()
                if self.calibration:
                    super().train(True)
                    with torch.no_grad():
                        for x in self.calibration:
                            self.inner(x)
        return super().train(mode)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def train_run(
    problem: Problem, train: TensorData, val: TensorData, optimizer: str, lr: float, seed: int
) -> dict[str, Any]:
    """One run of the protocol; ``optimizer`` is ``PROBLEM_OPTIMIZER`` (the problem's at
    ``lr``, the peak of its recipe) or a key of ``LR_FREE_GIVEN`` (``lr`` is then what it is
    given)."""
    model = build_model(problem, seed)
    steps = budget_steps(problem, len(train))
    if optimizer == PROBLEM_OPTIMIZER:
        opt = problem_optimizer(problem, model, lr)
    else:
        if lr != LR_FREE_GIVEN[optimizer]:
            raise ValueError(f"{optimizer} is given lr {LR_FREE_GIVEN[optimizer]}, not {lr}")
        opt = lr_free_optimizer(optimizer, problem, model, steps)
        if optimizer == "schedulefree":
            calibration = []
            if has_batch_norm(model):
                n = BATCH_NORM_CALIBRATION_BATCHES * problem.batch_size
                calibration = list(train.x[:n].split(problem.batch_size))
            wrapped = ScheduleFreeModel(model, calibration)
            wrapped.schedule_free = opt
            model = wrapped
    plan = TrialPlan(
        lr,
        problem.batch_size,
        problem.epochs,
        problem.eval_every,
        seed=seed,
        schedule=run_schedule(problem, optimizer, lr, steps),
    )
    try:
        outcome = train_trial(model, opt, problem.loss_fn, train, val, None, plan)
    except Exception as error:  # recorded as failed, and run again next time
        return {
            "optimizer": optimizer,
            "lr": lr,
            "seed": seed,
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
        }
    # Prodigy and D-Adaptation keep their estimate d in the group: the step they took is
    # d * lr (at the recipe's peak, lr, on a scheduled problem).
    group = opt.param_groups[0]
    effective_lr = float(group["d"]) * lr if "d" in group else None
    return run_record(problem, optimizer, lr, seed, outcome, effective_lr)


def run_schedule(problem: Problem, optimizer: str, lr: float, steps: int) -> Schedule | None:
    """lr(t) of a run over the budget's ``steps``: the problem's recipe peaking at ``lr``
    (for Prodigy and D-Adaptation a multiplier of their lr 1.0); None for a constant lr and
    for Schedule-Free (its warm-up is its own)."""
    if optimizer == "schedulefree":
        return None
    return problem.lr_recipe.build(lr, steps)


def run_record(
    problem: Problem,
    optimizer: str,
    lr: float,
    seed: int,
    outcome: TrialOutcome,
    effective_lr: float | None,
) -> dict[str, Any]:
    """What the results keep of a run: its score and its whole curve."""
    final = outcome.points[-1]
    score: float | None
    if outcome.status != "done":
        score = 0.0 if problem.metric == "accuracy" else None
    elif problem.metric == "accuracy":
        score = final.val_accuracy
    else:
        score = final.val_loss if math.isfinite(final.val_loss) else None
    return {
        "optimizer": optimizer,
        "lr": lr,
        "seed": seed,
        "status": outcome.status,
        "score": score,
        "seconds": outcome.seconds,
        "diverged_iteration": outcome.diverged_iteration,
        "effective_lr": effective_lr,
        "curve": {
            "iteration": [p.iteration for p in outcome.points],
            "epoch": [p.epoch for p in outcome.points],
            "train_loss": [p.train_loss for p in outcome.points],
            "val_loss": [p.val_loss for p in outcome.points],
            "val_accuracy": [p.val_accuracy for p in outcome.points],
        },
    }


def score_of(record: dict[str, Any], metric: str, constant: float = 0.0) -> float:
    """A run's score, the worst one (0 accuracy, an infinite loss) where it has none; a
    loss with the problem's ``constant`` added (``Problem.score_constant``)."""
    score = record.get("score")
    if score is None or record.get("status") != "done":
        return 0.0 if metric == "accuracy" else math.inf
    return float(score) + (constant if metric == "loss" else 0.0)
