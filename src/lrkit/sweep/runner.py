"""Running a sweep: every trial of the grid not yet in the store, each committed to the
store when it ends, by one of two engines: sequential (one trial at a time, the plain loop)
or vectorized (stacks of trials in lockstep, ``sweep.stacked``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from lrkit import validation as check
from lrkit.data.tensors import TensorData
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.schedules.base import Schedule
from lrkit.schedules.batch_size import BatchSizeSchedule
from lrkit.schedules.spec import Filled, batch_size_schedule_for_option, lr_schedule_for_option
from lrkit.sweep.definition import SWEEP_ENGINES, SweepDefinition, TrialKey
from lrkit.sweep.store import Store, StoredTrial
from lrkit.training.loop import CurvePoint, TrialOutcome, TrialPlan, train_trial
from lrkit.training.optimizers import make_optimizer
from lrkit.training.vectorized import ENGINES
from lrkit.workload import Workload

if TYPE_CHECKING:
    from lrkit.training.vectorized.loop import StackedTrial


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
    on_check: Callable[[TrialKey, CurvePoint, float, float], None] | None = None
    """(trial, point, epochs done, epochs in all)."""
    on_engine: Callable[[EngineChoice], None] | None = None
    """The engine chosen, and why when it is not the one asked for."""
    on_trial_end: Callable[[TrialKey, TrialOutcome], None] | None = None


STACKABLE_OPTIMIZERS = ("sgd", "momentum")


@dataclass(frozen=True)
class EngineChoice:
    engine: str
    """sequential or vectorized."""
    reason: str | None = None
    """Why the vectorized engine was not used, when it was asked for (or auto)."""
    workers: int = 1


def choose_engine(
    requested: str, plan: SweepPlan, work: Workload, train: TensorData, device: torch.device
) -> EngineChoice:
    """auto and vectorized run stacks when the optimizer and the model allow; otherwise
    (with the reason) one trial at a time."""
    check.choice("engine", requested, ENGINES)
    if requested == "sequential":
        return EngineChoice("sequential")
    optimizer = plan.definition.optimizer
    if optimizer not in STACKABLE_OPTIMIZERS:
        return EngineChoice(
            "sequential",
            f"the vectorized engine implements SGD (sgd, momentum), not {optimizer}",
        )
    from lrkit.training.vectorized.network import NotStackableError, check_stackable

    try:
        check_stackable(work.make_model(plan.definition.seed).to(device), train.x[:2].to(device))
    except NotStackableError as exc:
        return EngineChoice("sequential", str(exc))
    return EngineChoice("vectorized")


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


def run_sweep(
    store: Store,
    plan: SweepPlan,
    work: Workload,
    device: torch.device,
    events: SweepEvents | None = None,
    engine: str = "auto",
    workers: int | None = None,
    address: str | None = None,
) -> list[StoredTrial]:
    """Run every trial of ``plan`` that the store does not hold finished; return them all.

    ``engine``: sequential, vectorized, or auto (vectorized when the model and optimizer
    allow; a model that cannot be stacked runs one trial at a time, and
    ``events.on_engine`` hears why), or ray (``sweep.ray_engine``: stacks, or trials, as Ray
    tasks, on the cluster at ``address`` or a local instance). ``workers``: processes for the
    vectorized engine on a CPU (default one per core); with ray, the least number of tasks to
    split the grid into."""
    events = events or SweepEvents()
    train, val = check_plan(plan, work)
    check.choice("engine", engine, SWEEP_ENGINES)
    if engine == "ray":
        from lrkit.sweep.engines.ray import require_ray

        require_ray()
    choice = choose_engine("auto" if engine == "ray" else engine, plan, work, train, device)
    train, val = train.to(device), val.to(device)
    test = work.test.to(device) if work.test is not None else None
    sweep_id = store.sweep(plan.name, plan.definition)
    done = store.finished(sweep_id)
    todo = [key for key in plan.grid if key not in done]
    if choice.engine == "vectorized":
        from lrkit.sweep.engines.stacked import default_workers

        workers = check.positive_int("workers", workers) if workers else default_workers(device)
        choice = EngineChoice("vectorized", workers=workers)
    if engine == "ray":
        choice = EngineChoice("ray", choice.reason, workers or 1)
    if events.on_engine is not None:
        events.on_engine(choice)
    pending = Pending(store, sweep_id, plan, work, (train, val, test), device, todo, events)
    if engine == "ray":
        _run_ray(pending, stacked=choice.reason is None, tasks=choice.workers, address=address)
    elif choice.engine == "vectorized":
        _run_stacked(pending, choice.workers)
    else:
        _run_sequential(pending)
    return [t for t in store.trials(plan.name) if t.key in set(plan.grid)]


@dataclass(frozen=True)
class Pending:
    """The trials a run of a sweep still has to train, and where they go."""

    store: Store
    sweep_id: int
    plan: SweepPlan
    work: Workload
    data: tuple[TensorData, TensorData, TensorData | None]
    device: torch.device
    todo: list[TrialKey]
    events: SweepEvents


def build_stack(
    definition: SweepDefinition,
    work: Workload,
    n_train: int,
    device: torch.device,
    keys: Sequence[TrialKey],
) -> tuple[list[nn.Module], list[StackedTrial]]:
    """The models (on ``device``) and settings of a stack of trials of one batch size."""
    from lrkit.training.vectorized.loop import StackedTrial

    shared = trial_batch_size_schedule(definition.batch_size_schedule, keys[0].batch_size)
    plans = [trial_plan(definition, key, n_train, shared) for key in keys]
    models = [work.make_model(p.seed).to(device) for p in plans]
    return models, [StackedTrial(p, definition.momentum, definition.weight_decay) for p in plans]


def train_one(
    definition: SweepDefinition,
    work: Workload,
    data: tuple[TensorData, TensorData, TensorData | None],
    device: torch.device,
    key: TrialKey,
    on_check: Callable[[CurvePoint, float], None] | None = None,
) -> TrialOutcome:
    """One trial with the plain loop."""
    settings = trial_plan(definition, key, len(data[0]))
    model = work.make_model(settings.seed).to(device)
    optimizer = make_optimizer(
        definition.optimizer, model, key.lr, definition.momentum, definition.weight_decay
    )
    return train_trial(model, optimizer, work.loss_fn, *data, settings, on_check)


def _run_sequential(pending: Pending) -> None:
    store, sweep_id, events, data = pending.store, pending.sweep_id, pending.events, pending.data
    work, device, todo = pending.work, pending.device, pending.todo
    definition = pending.plan.definition
    for index, key in enumerate(todo):
        on_check = None
        if events.on_check is not None:
            on_check = _bind_check(events.on_check, key, definition.epochs)
        if events.on_trial_start is not None:
            events.on_trial_start(key, index, len(todo))
        store.mark_running(sweep_id, key, definition.seed + key.repeat)
        outcome = train_one(definition, work, data, device, key, on_check)
        store.save_trial(sweep_id, key, outcome)
        if events.on_trial_end is not None:
            events.on_trial_end(key, outcome)


def _run_ray(pending: Pending, stacked: bool, tasks: int, address: str | None) -> None:
    from lrkit.sweep.engines.ray import run_on_ray
    from lrkit.sweep.engines.stacked import make_stacks

    store, sweep_id, events, todo = pending.store, pending.sweep_id, pending.events, pending.todo
    definition = pending.plan.definition
    if stacked:
        groups = [s.keys for s in make_stacks(todo, tasks, len(pending.data[0]), definition.epochs)]
    else:
        groups = [(key,) for key in todo]
    started = 0

    def on_start(keys: Sequence[TrialKey]) -> None:
        nonlocal started
        for key in keys:
            store.mark_running(sweep_id, key, definition.seed + key.repeat)
            if events.on_trial_start is not None:
                events.on_trial_start(key, started, len(todo))
            started += 1

    def on_done(key: TrialKey, outcome: TrialOutcome) -> None:
        store.save_trial(sweep_id, key, outcome)
        if events.on_trial_end is not None:
            events.on_trial_end(key, outcome)

    # Tasks get the data on the CPU (Ray's object store) and move it to their device.
    cpu = torch.device("cpu")
    train, val, test = pending.data
    data = (train.to(cpu), val.to(cpu), test.to(cpu) if test is not None else None)
    run_on_ray(
        definition, pending.work, data, pending.device, groups, stacked, address, on_start, on_done
    )


def _bind_check(
    report: Callable[[TrialKey, CurvePoint, float, float], None], key: TrialKey, epochs: float
) -> Callable[[CurvePoint, float], None]:
    return lambda point, progress: report(key, point, progress, epochs)


def _run_stacked(pending: Pending, workers: int) -> None:
    from lrkit.sweep.engines.stacked import Message, Stack, make_stacks, run_stacks

    store, sweep_id, events, data = pending.store, pending.sweep_id, pending.events, pending.data
    work, device, todo = pending.work, pending.device, pending.todo
    definition = pending.plan.definition
    started = 0

    def build(stack: Stack) -> tuple[list[nn.Module], list[StackedTrial]]:
        return build_stack(definition, work, len(data[0]), device, stack.keys)

    def receive(message: Message) -> None:
        nonlocal started
        kind = message[0]
        if kind == "start":
            for key in message[1]:
                store.mark_running(sweep_id, key, definition.seed + key.repeat)
                if events.on_trial_start is not None:
                    events.on_trial_start(key, started, len(todo))
                started += 1
        elif kind == "check" and events.on_check is not None:
            events.on_check(message[1], message[2], message[3], definition.epochs)
        elif kind == "end":
            store.save_trial(sweep_id, message[1], message[2])
            if events.on_trial_end is not None:
                events.on_trial_end(message[1], message[2])

    stacks = make_stacks(todo, workers, len(data[0]), definition.epochs)
    run_stacks(stacks, build, work, data, workers, receive)
