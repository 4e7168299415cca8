"""What ``advise`` races for: the budget, the batch size, the optimizer, the metric, and how
the race runs. A frozen dataclass checked when it is made, torch-free, so the CLI checks its
options before torch loads."""

from __future__ import annotations

from dataclasses import dataclass

from lrkit import validation as check
from lrkit.errors import InvalidParameterError
from lrkit.schedules.recipe import Recipe
from lrkit.sweep.engines.names import AUTO, ENGINES
from lrkit.training.optimizers import check_optimizer_name, optimizer_args

METRICS = ("auto", "accuracy", "loss")
"""auto: accuracy for integer class labels, else the validation loss."""

DEFAULT_EPOCHS = 30.0
"""The budget a sweep trains for by default (the textbook's)."""

MAX_EPOCHS = 100_000.0
"""The longest budget (a run's checks and checkpoints are counted in it)."""

MIN_VAL_EXAMPLES = 50
"""Validation examples the race judges on, at least. An accuracy measured on n examples has a
standard error of up to 0.5 / sqrt(n): 0.07 at 50, where two candidates 0.2 apart are told
apart (twice their combined error); on one example every candidate scores 0 or 1 and a
difference means nothing."""

CEILING_METHODS = ("auto", "probe", "memory")
"""How the largest batch that fits is found: auto (probe on CUDA, the memory model
elsewhere), probe or memory (``batchsize.ceiling``)."""

MAX_CANDIDATES = 16
"""Candidates raced at most (each is a trial of the first rung)."""


@dataclass(frozen=True)
class AdviseSettings:
    """The budget and how to race.

    Args:
        epochs: the training budget the advice is for: every candidate is judged by the
            validation metric it would reach after this many epochs under the recipe.
        batch_size: examples per step, fixed.
        optimizer: sgd (plain), momentum, adam, adamw or ``module:Class`` (any
            torch.optim.Optimizer); momentum and weight_decay as the sweep takes them.
        optimizer_args: the optimizer's keyword arguments besides the lr, a JSON object.
        schedule: the lr schedule of the run, ``NAME[:k=v,...]`` as ``lrkit sweep
            --schedule`` takes it, over the whole budget (after the warm-up); None for a
            constant lr. The advised lr is its peak.
        warmup: the share of the budget warmed up linearly from 0 to the peak, in [0, 1).
        finish: train the winner on to the full budget (``Advice.finished``).
        metric: accuracy, loss or auto (accuracy for integer class labels and a (batch,
            classes) output, else the validation loss, as for a regression or a sequence
            model).
        seed: the initial weights and the data order of every candidate (all candidates see
            the same batches, so they are compared on equal terms), and the range test's.
        candidates: how many learning rates race at most (the rules' suggestions and a
            geometric ladder around the default rule's, deduplicated).
        engine: auto (vectorized when the optimizer and model allow: plain or momentum SGD on
            a stackable model), sequential, vectorized, or ray.
        workers: processes the trials of a rung are spread over on a CPU (default: one per
            core); with ray, the least number of tasks.
        accumulation_steps: micro-batches each batch trains in (gradient accumulation, the
            same steps at a fraction of the memory; ``advise.micro``); None: as few as the
            memory allows, 1 where the batch fits.
        memory: bytes a CPU's memory model may assume training uses (default: half the
            available memory).
        ceiling: how the largest batch that fits is found: auto (probe on CUDA, the memory
            model elsewhere), probe or memory.
    """

    epochs: float = DEFAULT_EPOCHS
    batch_size: int = 16
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer_args: str | None = None
    schedule: str | None = None
    warmup: float = 0.0
    finish: bool = False
    metric: str = "auto"
    seed: int = 0
    candidates: int = 6
    engine: str = AUTO
    workers: int | None = None
    accumulation_steps: int | None = None
    memory: int | None = None
    ceiling: str = "auto"

    def __post_init__(self) -> None:
        check.float_in("epochs", self.epochs, 0.0, MAX_EPOCHS, low_open=True, high_open=False)
        check.positive_int("batch_size", self.batch_size)
        check_optimizer_name(self.optimizer)
        check.float_in("momentum", self.momentum, 0.0, 1.0, low_open=False, high_open=True)
        check.nonnegative_float("weight_decay", self.weight_decay)
        optimizer_args(self.optimizer_args)
        self.recipe().check()
        check.choice("metric", self.metric, METRICS)
        check.seed("seed", self.seed)
        check.int_in("candidates", self.candidates, 2, MAX_CANDIDATES)
        check.choice("engine", self.engine, ENGINES)
        if self.workers is not None:
            check.positive_int("workers", self.workers)
        if self.accumulation_steps is not None:
            check.int_in(
                "accumulation_steps", self.accumulation_steps, 1, self.batch_size, "the batch size"
            )
            if self.batch_size % self.accumulation_steps:
                raise InvalidParameterError(
                    "accumulation_steps",
                    f"a divisor of the batch size ({self.batch_size})",
                    self.accumulation_steps,
                )
        if self.memory is not None:
            check.positive_int("memory", self.memory)
        check.choice("ceiling", self.ceiling, CEILING_METHODS)

    def recipe(self) -> Recipe:
        """The run's lr over the budget: the warm-up, then the schedule."""
        return Recipe(self.schedule, self.warmup)
