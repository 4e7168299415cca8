"""Sweeps as ``lrkit sweep`` and ``lrkit reproduce`` run them: into a store named by its
path, which keeps every trial as it ends, so that the same command run again resumes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from lrkit.sweep.definition import TrialKey
from lrkit.sweep.engines.registry import EngineRequest
from lrkit.sweep.runner import SweepEvents, run_sweep
from lrkit.sweep.store import Store, StoredTrial
from lrkit.sweep.trials import SweepPlan, check_plan
from lrkit.training.device import resolve_device
from lrkit.workload import Workload


def sweep_into_store(
    plan: SweepPlan,
    store_path: Path,
    work: Workload,
    device: str,
    engine: EngineRequest,
    watching: Callable[[], AbstractContextManager[SweepEvents]],
) -> list[StoredTrial]:
    """Check the plan, reach the engine, open the store (created if new), run the trials it
    does not hold finished inside ``watching()``, which gives the events to tell; the plan's
    trials. The engine is reached before the store is touched: a Ray address it cannot
    reach writes nothing."""
    target = resolve_device(device)
    check_plan(plan, work, target)
    with engine.session(), watching() as events, Store.open(store_path) as store:
        return run_sweep(store, plan, work, target, events, engine)


def finished_trials(store_path: Path, grids: Mapping[str, Sequence[TrialKey]]) -> int:
    """How many trials of the sweeps (name -> grid) ``store_path`` holds (none where there is
    no store yet)."""
    if not store_path.is_file():
        return 0
    finished = 0
    with Store.open(store_path, create=False) as store:
        for name, grid in grids.items():
            keys = set(grid)
            finished += sum(t.key in keys for t in store.trials(name, with_points=False))
    return finished
