"""Running a sweep: every trial of the grid that the store does not hold finished, through
one engine (``sweep.engines``), each trial committed to the store as the engine reports that
it ended. The runner chooses the engine and does the bookkeeping (mark running, save, progress)
once for all of them (``TrialBook``, which a ladder's branched horizons keep too); engines never
import the runner."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from lrkit.sweep.definition import TrialKey
from lrkit.sweep.engines.contract import EngineEvents, TrainingSetup
from lrkit.sweep.engines.registry import (
    EngineChoice,
    EngineRequest,
    check_address,
    check_engine,
    choose_engine,
    make_engine,
)
from lrkit.sweep.store import Store, StoredTrial
from lrkit.sweep.trials import SweepPlan, check_plan, trial_jobs
from lrkit.training.records import CurvePoint, TrialOutcome
from lrkit.workload import Workload


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


def run_sweep(
    store: Store,
    plan: SweepPlan,
    work: Workload,
    device: torch.device,
    events: SweepEvents | None = None,
    engine: EngineRequest | None = None,
) -> list[StoredTrial]:
    """Run every trial of ``plan`` that the store does not hold finished; return them all.

    ``engine`` (default: auto): sequential, vectorized, or auto (vectorized when the model and
    optimizer allow; a model that cannot be stacked runs one trial at a time, and
    ``events.on_engine`` hears why), or ray (stacks, or trials, as Ray tasks, on the cluster
    at its address or a local instance). Its workers: processes for the vectorized engine on
    a CPU (default one per core); with ray, the least number of tasks to split the grid into
    (``sweep.engines.registry.choose_engine``)."""
    events = events or SweepEvents()
    request = engine or EngineRequest()
    train, val = check_plan(plan, work, device)
    check_engine(request.name)
    if request.remote:
        check_address(request.name, request.address)
    model = work.make_model(plan.definition.seed).to(device)
    choice = choose_engine(request, plan.definition.optimizer, model, train.x[:2].to(device))
    setup = TrainingSetup(work.make_model, work.loss_fn, train, val, work.test, device)
    sweep_id = store.sweep(plan.name, plan.definition)
    done = store.finished(sweep_id)
    todo = [key for key in plan.grid if key not in done]
    if events.on_engine is not None:
        events.on_engine(choice)
    book = TrialBook(store, len(todo), events)
    with book.rows.forgotten_if_stopped():
        make_engine(choice, request.address).run(
            trial_jobs(plan.definition, todo, len(train)),
            setup.on(device),
            _store_events(book, sweep_id, plan, events),
        )
    grid = set(plan.grid)
    return [t for t in store.trials(plan.name) if t.key in grid]


class RunningRows:
    """The trials a run has marked running in ``store`` and not yet saved. A run that stops
    before they end (Ctrl-C, SIGTERM, a failure) takes their rows out on its way out
    (``forgotten_if_stopped``), so that the store holds what the run finished and nothing
    that looks as if it were still running; a rerun runs them. Only a killed process leaves
    rows ``running`` (the store's contract: they are run again too)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._open: set[tuple[int, TrialKey]] = set()

    def start(self, sweep_id: int, key: TrialKey, seed: int) -> None:
        # Noted first: a signal may arrive as the row is being written.
        self._open.add((sweep_id, key))
        self.store.mark_running(sweep_id, key, seed)

    def save(self, sweep_id: int, key: TrialKey, outcome: TrialOutcome) -> None:
        self.store.save_trial(sweep_id, key, outcome)
        self._open.discard((sweep_id, key))

    @contextlib.contextmanager
    def forgotten_if_stopped(self) -> Iterator[None]:
        """Forget the open rows when the block raises (KeyboardInterrupt included)."""
        try:
            yield
        except BaseException:
            # A store that cannot be written may be why the run stopped: its rows then stay
            # running, as after a kill, and that first error is the one reported.
            with contextlib.suppress(sqlite3.Error):
                for sweep_id, key in self._open:
                    self.store.forget_running(sweep_id, key)
            raise


class TrialBook:
    """The store's side of a run's trials, kept once for every caller of an engine: each
    trial's row marked running as it starts and saved as it ends (``RunningRows``, so a stop
    forgets the open ones), and ``events`` told of both, the starts counted against the
    ``total`` the run will start. The trials may belong to several sweeps (a ladder of
    horizons); the store's sweep of each is named by its id."""

    def __init__(self, store: Store, total: int, events: SweepEvents) -> None:
        self.rows = RunningRows(store)
        self.total = total
        self.events = events
        self.started = 0

    def start(self, sweep_id: int, key: TrialKey, seed: int) -> None:
        self.rows.start(sweep_id, key, seed)
        if self.events.on_trial_start is not None:
            self.events.on_trial_start(key, self.started, self.total)
        self.started += 1

    def end(self, sweep_id: int, key: TrialKey, outcome: TrialOutcome) -> None:
        self.rows.save(sweep_id, key, outcome)
        if self.events.on_trial_end is not None:
            self.events.on_trial_end(key, outcome)


def _store_events(
    book: TrialBook, sweep_id: int, plan: SweepPlan, events: SweepEvents
) -> EngineEvents:
    """The engine's reports, each trial's row written by this process alone: marked running
    when its group starts, saved with its curve in one transaction when it ends."""
    definition = plan.definition

    def on_start(keys: Sequence[TrialKey]) -> None:
        for key in keys:
            book.start(sweep_id, key, definition.seed + key.repeat)

    def on_check(key: TrialKey, point: CurvePoint, progress: float) -> None:
        if events.on_check is not None:
            events.on_check(key, point, progress, definition.epochs)

    def on_done(key: TrialKey, outcome: TrialOutcome) -> None:
        book.end(sweep_id, key, outcome)

    return EngineEvents(on_done, on_start, on_check if events.on_check is not None else None)
