"""Running a sweep: every trial of the grid not yet in the store, one at a time, each
committed to the store when it ends (sequential engine)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lrkit.data.tensors import TensorData
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.schedules import registry
from lrkit.schedules.base import Schedule
from lrkit.schedules.batch_size import BatchSizeSchedule, batch_size_steps
from lrkit.schedules.spec import parse_params, split_spec
from lrkit.sweep.spec import SweepDefinition, TrialKey
from lrkit.sweep.store import Store, StoredTrial
from lrkit.training.loop import CurvePoint, TrialOutcome, TrialPlan, train_trial
from lrkit.training.optimizers import make_optimizer
from lrkit.workload import Workload


@dataclass(frozen=True)
class SweepPlan:
    """A named sweep: its definition and the trials of its grid."""

    name: str
    definition: SweepDefinition
    grid: tuple[TrialKey, ...]


@dataclass
class SweepEvents:
    """Callbacks for progress display; every one optional."""

    on_trial_start: Callable[[TrialKey, int, int], None] | None = None
    """(trial, how many trials this run has started, how many it will run)."""
    on_check: Callable[[CurvePoint, float, float], None] | None = None
    """(point, epochs done, epochs in all)."""
    on_trial_end: Callable[[TrialKey, TrialOutcome], None] | None = None


def trial_schedule(spec: str | None, lr: float, total_iterations: int) -> Schedule | None:
    """The lr schedule of one trial from ``NAME[:k=v,...]``: the trial's lr fills ``base_lr``
    (or ``max_lr`` for one_cycle), and ``max_iter`` defaults to the trial's length."""
    if spec is None:
        return None
    name, pieces = split_spec(spec)
    info = registry.describe(name)
    params, _ = parse_params(spec, info, pieces)
    for fixed in ("base_lr", "max_lr"):
        if fixed in params:
            raise LrkitValueError(
                f"--schedule {spec!r}: {fixed} comes from the trial's --lr; leave it out",
            )
    if info.param("base_lr") is not None:
        params["base_lr"] = lr
    elif info.param("max_lr") is not None:
        params["max_lr"] = lr
    if info.param("max_iter") is not None and "max_iter" not in params:
        params["max_iter"] = total_iterations
    return registry.create(name, **params)


def trial_batch_size_schedule(spec: str | None, batch_size: int) -> BatchSizeSchedule | None:
    """``factor=F,milestones=E1,E2[,max_batch_size=M]``: the batch grows by F at each
    milestone epoch, from the trial's batch size (Smith et al. 2018)."""
    if spec is None:
        return None
    info = registry.describe_factory("batch_size_steps", batch_size_steps)
    params, _ = parse_params(spec, info, split_spec("batch_size_steps:" + spec)[1])
    if "base_batch_size" in params:
        raise LrkitValueError("--batch-size-schedule: the base batch size comes from --batch-size")
    missing = [
        p.option[2:]
        for p in info.params
        if p.required and p.name not in params and p.name != "base_batch_size"
    ]
    if missing:
        raise LrkitValueError(
            f"--batch-size-schedule {spec!r} needs {', '.join(missing)} "
            "(e.g. factor=2,milestones=10,20)"
        )
    return batch_size_steps(batch_size, **params)  # type: ignore[arg-type]


def check_plan(plan: SweepPlan, work: Workload) -> tuple[TensorData, TensorData]:
    """Everything that can be checked before any trial runs (so bad input touches no store);
    the workload's training and validation tensors, which a sweep needs."""
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
    trial_schedule(plan.definition.schedule, first.lr, 1)
    trial_batch_size_schedule(plan.definition.batch_size_schedule, first.batch_size)
    return train, val


def run_sweep(
    store: Store,
    plan: SweepPlan,
    work: Workload,
    device: torch.device,
    events: SweepEvents | None = None,
) -> list[StoredTrial]:
    """Run every trial of ``plan`` that the store does not hold finished; return them all."""
    events = events or SweepEvents()
    definition = plan.definition
    on_check = None
    if events.on_check is not None:
        report = events.on_check

        def on_check(point: CurvePoint, progress: float) -> None:
            report(point, progress, definition.epochs)

    train, val = check_plan(plan, work)
    train, val = train.to(device), val.to(device)
    test = work.test.to(device) if work.test is not None else None
    sweep_id = store.sweep(plan.name, definition)
    done = store.finished(sweep_id)
    todo = [key for key in plan.grid if key not in done]
    for index, key in enumerate(todo):
        seed = definition.seed + key.repeat
        if events.on_trial_start is not None:
            events.on_trial_start(key, index, len(todo))
        store.mark_running(sweep_id, key, seed)
        model = work.make_model(seed).to(device)
        optimizer = make_optimizer(
            definition.optimizer, model, key.lr, definition.momentum, definition.weight_decay
        )
        iterations = math.ceil(definition.epochs * math.ceil(len(train) / key.batch_size))
        trial_plan = TrialPlan(
            lr=key.lr,
            batch_size=key.batch_size,
            epochs=definition.epochs,
            eval_every=definition.eval_every,
            seed=seed,
            schedule=trial_schedule(definition.schedule, key.lr, iterations),
            batch_size_schedule=trial_batch_size_schedule(
                definition.batch_size_schedule, key.batch_size
            ),
        )
        outcome = train_trial(
            model, optimizer, work.loss_fn, train, val, test, trial_plan, on_check
        )
        store.save_trial(sweep_id, key, outcome)
        if events.on_trial_end is not None:
            events.on_trial_end(key, outcome)
    return [t for t in store.trials(plan.name) if t.key in set(plan.grid)]
