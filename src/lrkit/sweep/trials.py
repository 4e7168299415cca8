"""The trials of a sweep: the plan of each (from the sweep's definition), the checks made
before any of them runs, and the two ways to train them that every engine uses: one trial on
the plain loop (:func:`run_job`) and a stack on the vectorized loop (:func:`run_stack`), each
turning a trial that raises into a failed outcome, as the engine contract says."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lrkit.data.tensors import TensorData
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.schedules.base import Schedule
from lrkit.schedules.batch_size import BatchSizeSchedule
from lrkit.schedules.spec import Filled, batch_size_schedule_for_option, lr_schedule_for_option
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.engines.contract import OnCheck, OnDone, TrainingSetup, TrialJob, failed_outcome
from lrkit.training.fit_check import check_model_fits
from lrkit.training.loop import TrialHooks, train_trial
from lrkit.training.records import CurvePoint, TrialOutcome, TrialPlan
from lrkit.workload import Workload


@dataclass(frozen=True)
class SweepPlan:
    """A named sweep: its definition and the trials of its grid."""

    name: str
    definition: SweepDefinition
    grid: tuple[TrialKey, ...]


def trial_schedule(spec: str | None, lr: float, total_iterations: int) -> Schedule | None:
    """The lr schedule of one trial from ``NAME[:k=v,...]``: the trial's lr fills ``base_lr``
    (or ``max_lr`` for one_cycle), and ``max_iter`` defaults to the trial's length."""
    if spec is None:
        return None
    return lr_schedule_for_option(
        "--schedule",
        spec,
        rate=Filled(lr, "the trial's --lr"),
        defaults={"max_iter": total_iterations},
    )


def trial_batch_size_schedule(spec: str | None, batch_size: int) -> BatchSizeSchedule | None:
    """``factor=F,milestones=E1,E2[,max_batch_size=M]``: the batch grows by F at each
    milestone epoch, from the trial's batch size (Smith et al. 2018)."""
    if spec is None:
        return None
    return batch_size_schedule_for_option(
        "--batch-size-schedule", spec, base=Filled(batch_size, "--batch-size")
    )


def check_plan(
    plan: SweepPlan, work: Workload, device: torch.device | None = None
) -> tuple[TensorData, TensorData]:
    """Everything that can be checked before any trial runs, so that bad input touches no
    store: tensor data with a validation part, batch sizes, the schedules, and one forward
    pass of the model and the loss on a first batch (on ``device``, default the CPU). Returns
    the training and validation tensors."""
    train, val = work.train, work.val
    if not isinstance(train, TensorData) or val is None:
        raise LrkitValueError(
            "--data: a sweep needs tensor data (TensorData or (x, y)) with a validation part"
        )
    if not plan.grid:
        raise LrkitValueError("the sweep has no trials")
    for key in plan.grid:
        if key.batch_size > len(train):
            raise InvalidParameterError(
                "batch_size",
                f"at most the number of training examples ({len(train)})",
                key.batch_size,
            )
    first = plan.grid[0]
    for key in {k.batch_size: k for k in plan.grid}.values():  # one trial of each batch size
        trial_plan(plan.definition, key, len(train))
    target = device or torch.device("cpu")
    model = work.make_model(plan.definition.seed).to(target)
    batch = train.head(first.batch_size).to(target)
    check_model_fits(model, work.loss_fn, batch.x, batch.y, targets=(train.y, val.y))
    return train, val


def trial_plan(
    definition: SweepDefinition,
    key: TrialKey,
    n_train: int,
    batch_size_schedule: BatchSizeSchedule | None = None,
) -> TrialPlan:
    """How trial ``key`` trains; ``batch_size_schedule`` shares one schedule object between
    the trials of a stack."""
    iterations = math.ceil(definition.epochs * math.ceil(n_train / key.batch_size))
    return TrialPlan(
        lr=key.lr,
        batch_size=key.batch_size,
        epochs=definition.epochs,
        eval_every=definition.eval_every,
        seed=definition.seed + key.repeat,
        schedule=trial_schedule(definition.schedule, key.lr, iterations),
        batch_size_schedule=batch_size_schedule
        or trial_batch_size_schedule(definition.batch_size_schedule, key.batch_size),
    )


def trial_jobs(
    definition: SweepDefinition, keys: Sequence[TrialKey], n_train: int
) -> list[TrialJob]:
    """The jobs of ``keys``; the trials of one batch size share their batch-size schedule
    (so that they can stack)."""
    growth: dict[int, BatchSizeSchedule | None] = {}
    for key in keys:
        if key.batch_size not in growth:
            growth[key.batch_size] = trial_batch_size_schedule(
                definition.batch_size_schedule, key.batch_size
            )
    momentum = definition.momentum if definition.optimizer == "momentum" else 0.0
    return [
        TrialJob(
            key,
            trial_plan(definition, key, n_train, growth[key.batch_size]),
            definition.optimizer,
            momentum,
            definition.weight_decay,
        )
        for key in keys
    ]


class CallbackError(Exception):
    """An exception raised by a caller's callback, carried through a trial's guard so that it
    is not mistaken for the trial failing."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def _guarded(callback: Callable[..., None] | None) -> Callable[..., None] | None:
    if callback is None:
        return None

    def call(*args: object) -> None:
        try:
            callback(*args)
        except Exception as exc:
            raise CallbackError(exc) from exc

    return call


def run_job(
    job: TrialJob, setup: TrainingSetup, on_check: Callable[[CurvePoint, float], None] | None = None
) -> TrialOutcome:
    """One trial on the plain loop; a trial that raises becomes a failed outcome."""
    started = time.perf_counter()
    try:
        model = setup.make_model(job.plan.seed).to(setup.device)
        optimizer = job.make_optimizer(model)
        return train_trial(
            model,
            optimizer,
            setup.loss_fn,
            setup.train,
            setup.val,
            setup.test,
            job.plan,
            TrialHooks(on_check=_guarded(on_check)),
        )
    except CallbackError as exc:
        raise exc.original from None
    except Exception as exc:
        return failed_outcome(exc, time.perf_counter() - started)


def run_stack(
    jobs: Sequence[TrialJob],
    setup: TrainingSetup,
    on_done: OnDone,
    on_check: OnCheck | None = None,
) -> None:
    """Train ``jobs`` (plain or momentum SGD, one stack shape) as one stacked model on the
    vectorized loop; every job reaches ``on_done`` once, a diverged one as soon as found. A
    stack that raises fails every trial that had not ended."""
    from lrkit.training.vectorized.loop import StackedRun, StackedTrial

    started = time.perf_counter()
    ended: set[int] = set()
    guarded_check = _guarded(on_check)
    guarded_done = _guarded(on_done)
    assert guarded_done is not None

    def end(index: int, outcome: TrialOutcome) -> None:
        ended.add(index)
        guarded_done(jobs[index].key, outcome)

    def check(index: int, point: CurvePoint, progress: float) -> None:
        if guarded_check is not None:
            guarded_check(jobs[index].key, point, progress)

    try:
        models = [setup.make_model(job.plan.seed).to(setup.device) for job in jobs]
        trials = [StackedTrial(job.plan, job.momentum, job.weight_decay) for job in jobs]
        run = StackedRun(models, trials, setup.loss_fn, setup.train, setup.val, setup.test)
        run.run(check, end)
    except CallbackError as exc:
        raise exc.original from None
    except Exception as exc:
        outcome = failed_outcome(exc, (time.perf_counter() - started) / len(jobs))
        for index, job in enumerate(jobs):
            if index not in ended:
                on_done(job.key, outcome)
