"""Reading a sweep: the best learning rate per batch size, with spread over repeats and a flag
where the top two are within noise, and the fit of lr* against batch size (pure core).

A diverged trial scores 0 (the learning rate was too high to train at); a failed trial
(training raised: a bug or a crash, not the learning rate's doing) says nothing about its
learning rate and is left out, as if it had not run. A learning rate is ranked by its mean over
the repeats that count.
"Within noise": two means differ by less than twice their combined standard error,
sqrt(se1^2 + se2^2). A mean's standard error is s / sqrt(n) over n >= 2 repeats; with one
repeat it is the binomial error of an accuracy measured on ``val_size`` examples,
sqrt(p (1 - p) / val_size) (the evaluation's own noise, a lower bound on the seed's); with
one repeat and no ``val_size`` there is nothing to judge by, and the flag is None.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from lrkit.scaling import PowerLawFit, fit_power_law

METRICS = ("final", "best")


class TrialScore(Protocol):
    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def status(self) -> str: ...
    @property
    def final_val_accuracy(self) -> float | None: ...
    @property
    def best_val_accuracy(self) -> float | None: ...


Scored = TypeVar("Scored", bound=TrialScore)


def scored_trials(trials: Sequence[Scored]) -> list[Scored]:
    """The trials that say something about their learning rate: all but the failed."""
    return [t for t in trials if t.status != "failed"]


@dataclass(frozen=True)
class LrScore:
    """One learning rate at one batch size: mean and spread of the accuracy over repeats."""

    lr: float
    mean: float
    std: float
    n: int
    diverged: int
    stderr: float | None
    """Standard error of ``mean`` (see the module's docstring); None when unknown."""


def within_noise(a: LrScore, b: LrScore) -> bool | None:
    """True when ``a`` and ``b`` differ by less than twice their combined standard error."""
    if a.stderr is None or b.stderr is None:
        return None
    return abs(a.mean - b.mean) < 2.0 * math.sqrt(a.stderr**2 + b.stderr**2)


@dataclass(frozen=True)
class BestLr:
    """The winner at one batch size, the runner-up, and whether they are within noise."""

    batch_size: int
    metric: str
    lr: float
    mean: float
    std: float
    runner_up: LrScore | None
    within_noise: bool | None
    scores: tuple[LrScore, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "lr": self.lr,
            "mean": self.mean,
            "std": self.std,
            "runner_up_lr": None if self.runner_up is None else self.runner_up.lr,
            "runner_up_mean": None if self.runner_up is None else self.runner_up.mean,
            "within_noise": self.within_noise,
        }


def _accuracy(trial: TrialScore, metric: str) -> float:
    if trial.status != "done":
        return 0.0
    value = trial.final_val_accuracy if metric == "final" else trial.best_val_accuracy
    return 0.0 if value is None or not math.isfinite(value) else value


def _stderr(values: list[float], std: float, val_size: int | None) -> float | None:
    if len(values) > 1:
        return std / math.sqrt(len(values))
    if val_size:
        p = values[0]
        return math.sqrt(max(p * (1.0 - p), 0.0) / val_size)
    return None


def scores(
    trials: Sequence[TrialScore], metric: str = "final", val_size: int | None = None
) -> dict[int, tuple[LrScore, ...]]:
    """Per batch size, every lr's score, best first (failed trials left out)."""
    groups: dict[int, dict[float, list[TrialScore]]] = defaultdict(lambda: defaultdict(list))
    for trial in scored_trials(trials):
        groups[trial.batch_size][trial.lr].append(trial)
    result = {}
    for batch_size, by_lr in sorted(groups.items()):
        ranked = []
        for lr, group in by_lr.items():
            values = [_accuracy(t, metric) for t in group]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            diverged = sum(t.status == "diverged" for t in group)
            stderr = _stderr(values, std, val_size)
            ranked.append(LrScore(lr, statistics.fmean(values), std, len(values), diverged, stderr))
        ranked.sort(key=lambda s: (-s.mean, s.lr))
        result[batch_size] = tuple(ranked)
    return result


def best_lr_by_batch_size(
    trials: Sequence[TrialScore], metric: str = "final", val_size: int | None = None
) -> dict[int, BestLr]:
    """The best learning rate at each batch size by final or best validation accuracy;
    ``val_size`` (validation examples) lets a single repeat be judged for noise."""
    result = {}
    for batch_size, ranked in scores(trials, metric, val_size).items():
        top = ranked[0]
        runner_up = ranked[1] if len(ranked) > 1 else None
        within = None if runner_up is None else within_noise(top, runner_up)
        result[batch_size] = BestLr(
            batch_size, metric, top.lr, top.mean, top.std, runner_up, within, ranked
        )
    return result


def fit_best(best: dict[int, BestLr]) -> PowerLawFit | None:
    """The fit of lr* ~ B^k over the batch sizes where two learning rates or more were tried
    (a single lr wins by default and says nothing); None for fewer than two such sizes."""
    usable = {b: w.lr for b, w in best.items() if len(w.scores) > 1}
    if len(usable) < 2:
        return None
    return fit_power_law(usable)
