"""What ``advise`` found (torch-free): frozen dataclasses that serialise to the CLI's JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lrkit.advise.micro import MicroBatching
from lrkit.rangetest.result import RangeTestResult


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


CONFIDENT, UNSURE = "confident", "unsure"


@dataclass(frozen=True)
class Confidence:
    """How sure the advice is: ``confident`` or ``unsure``, and why it is unsure
    (``advise.confidence``)."""

    label: str
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class RacedCandidate:
    """One learning rate of the race: how far it ran and how it did."""

    lr: float
    sources: tuple[str, ...]
    """Where it came from: rule names, or ``ladder xF`` (a factor of the default rule's lr)."""
    value: float
    """The validation metric at the last check it reached (0 accuracy or inf loss when it
    diverged or failed)."""
    value_std: float
    """Its noise: the binomial error of an accuracy on the validation set with the jitter of
    the curve around its trend (accuracy), or that jitter (loss); nan when unknown."""
    epochs_run: float
    status: str
    """done, diverged or failed."""
    curve: tuple[tuple[float, float], ...]
    """(epoch, validation metric) at every check of the race."""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "sources": list(self.sources),
            "value": _finite(self.value),
            "value_std": _finite(self.value_std),
            "epochs_run": self.epochs_run,
            "status": self.status,
            "error": self.error,
            "curve": [[e, _finite(v)] for e, v in self.curve],
        }


@dataclass(frozen=True)
class FinishedRun:
    """The advised lr trained to the full budget (``--finish``): the model the advice is for."""

    lr: float
    status: str
    """done, diverged or failed."""
    value: float
    """The validation metric at the end of the budget."""
    epochs_trained: float
    """Epochs this run added: from where the race left it (``resumed_at``) to the budget."""
    resumed_at: float
    """The epochs the race had trained it (0: trained from the start)."""
    curve: tuple[tuple[float, float], ...]
    error: str | None = None
    state: Any = None
    """The trained model's and optimizer's state, a ``training.records.Checkpoint`` (not in
    the JSON; this module is torch-free)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "status": self.status,
            "value": _finite(self.value),
            "epochs_trained": self.epochs_trained,
            "resumed_at": self.resumed_at,
            "error": self.error,
            "curve": [[e, _finite(v)] for e, v in self.curve],
        }


@dataclass(frozen=True)
class Advice:
    """The learning rate advised for the budget, with the race that chose it."""

    lr: float
    """The lr advised for the budget: the race's winner times ``horizon_factor``."""
    raced_lr: float
    """The race's winner."""
    horizon_factor: float
    """From the winner to the advised lr: sqrt(epochs judged / budget) for an adaptive
    optimizer (``advise.horizon``), else 1."""
    batch_size: int
    metric: str
    """accuracy (higher is better) or loss (lower is better)."""
    epochs: float
    optimizer: str
    value: float
    """The winner's validation metric where the race decided (half the budget)."""
    candidates: tuple[RacedCandidate, ...]
    """In increasing lr."""
    runner_up: float | None
    """The lr that came second in the last rung."""
    runner_up_within_noise: bool | None
    """Whether the runner-up is within noise of the chosen one: two values within twice their
    combined noise, sqrt(s1^2 + s2^2); None where a noise is unknown."""
    range_test: RangeTestResult
    engine: str
    engine_reason: str | None
    seconds: float
    range_test_seconds: float
    trial_epochs: float
    """Epochs trained over every candidate (the race's compute; the budget is ``epochs``)."""
    as_good: tuple[float, float]
    """The smallest and largest lr the race could not tell from the winner, scaled as the
    advice is (``advise.confidence``)."""
    cautions: tuple[str, ...]
    """What the race could not measure, in plain sentences (``advise.confidence``)."""
    left_out: tuple[tuple[str, float], ...] = ()
    """Rules whose suggestion was too far from the default's to race (rule, lr)."""
    model: str = ""
    data: str = ""
    recipe: str = "constant"
    """The run's lr over the budget, in words (``schedules.recipe.Recipe.label``): the
    advised lr is its peak."""
    range_test_budgets: float = 0.0
    """The range test's steps, in runs of the budget."""
    finished: FinishedRun | None = None
    """The advised lr trained to the budget, with ``finish``."""
    confidence: Confidence = field(default_factory=lambda: Confidence(UNSURE, ("not judged",)))
    """``confident`` or ``unsure``, with the reasons (``advise.confidence``)."""
    batching: MicroBatching | None = None
    """How the batch trains in memory (``advise.micro``); None: whole."""

    @property
    def micro_batching(self) -> MicroBatching:
        """How the batch trains: ``batching``, or whole."""
        return self.batching or MicroBatching(self.batch_size, self.batch_size, 1)

    @property
    def budgets_trained(self) -> float:
        """Training of the range test, the race and the finishing run, in runs of the
        budget."""
        finishing = self.finished.epochs_trained if self.finished is not None else 0.0
        return self.range_test_budgets + (self.trial_epochs + finishing) / self.epochs

    @property
    def beyond_one_run(self) -> float | None:
        """With ``finish``, the training beyond the one run the user would have made anyway;
        None without."""
        return self.budgets_trained - 1.0 if self.finished is not None else None

    @property
    def decided_at(self) -> float:
        """The epochs at which the race decided: how far its winner ran."""
        return next(c.epochs_run for c in self.candidates if c.lr == self.raced_lr)

    def mark(self, lr: float) -> str:
        """How a candidate's row is marked: ``advised`` (the winner, advised as it is),
        ``won`` (the winner, advised scaled), or blank."""
        if lr != self.raced_lr:
            return ""
        return "advised" if lr == self.lr else "won"

    def confidence_note(self) -> str:
        """``confident``, or ``unsure`` with the reasons the cautions do not already say."""
        said = self.confidence
        extra = [r for r in said.reasons if r not in self.cautions]
        if extra:
            return f"{said.label} ({'; '.join(extra)})"
        return f"{said.label} (see the cautions)" if said.reasons else said.label

    def horizon_note(self) -> str | None:
        """Why the advised lr is not the race's winner, or None where it is."""
        if self.lr == self.raced_lr:
            return None
        return (
            f"that is the race's winner, {self.raced_lr:.4g}, x {self.horizon_factor:.2g}: with "
            f"{self.optimizer} the best constant lr falls as one over the square root of the "
            f"training time, and the race judged at {self.decided_at:g} of {self.epochs:g} epochs"
        )

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def to_json(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "batch_size": self.batch_size,
            **self.micro_batching.to_json(),
            "metric": self.metric,
            "raced_lr": self.raced_lr,
            "horizon_factor": self.horizon_factor,
            "value": _finite(self.value),
            "epochs": self.epochs,
            "optimizer": self.optimizer,
            "candidates": [{**c.to_json(), "batch_size": self.batch_size} for c in self.candidates],
            "runner_up": self.runner_up,
            "runner_up_within_noise": self.runner_up_within_noise,
            "engine": self.engine,
            "engine_reason": self.engine_reason,
            "seconds": self.seconds,
            "range_test_seconds": self.range_test_seconds,
            "trial_epochs": self.trial_epochs,
            "as_good": list(self.as_good),
            "cautions": list(self.cautions),
            "confidence": self.confidence.to_json(),
            "left_out": [{"rule": rule, "lr": lr} for rule, lr in self.left_out],
            "model": self.model,
            "data": self.data,
            "recipe": self.recipe,
            "cost": {
                "budgets_trained": self.budgets_trained,
                "beyond_one_run": self.beyond_one_run,
                "range_test": self.range_test_budgets,
            },
            "finished": self.finished.to_json() if self.finished is not None else None,
            "range_test": self.range_test.to_json(),
        }
