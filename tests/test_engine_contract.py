"""The engine contract (``lrkit.sweep.engines.contract``), engine by engine: the same trials
give the same store whichever engine runs them; every job is reported exactly once; a trial
that raises becomes a failed outcome with its message and the others go on; trials continue
from checkpoints for "k more epochs" on any engine."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lrkit.sweep.definition import SweepDefinition, TrialKey, product_grid
from lrkit.sweep.engines.contract import Engine, EngineEvents, TrainingSetup
from lrkit.sweep.engines.registry import EngineChoice, EngineRequest, make_engine
from lrkit.sweep.engines.sequential import SequentialEngine
from lrkit.sweep.engines.stacked import StackedEngine
from lrkit.sweep.runner import run_sweep
from lrkit.sweep.store import Store
from lrkit.sweep.trials import SweepPlan, trial_jobs
from lrkit.training.loop import TrialOutcome
from lrkit.workload import load_workload

USER_MODULE = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(700, 10, generator=g)
        y = x[:, :3].argmax(dim=1)
        return {"train": (x[:500], y[:500]), "val": (x[500:600], y[500:600]),
                "test": (x[600:], y[600:])}

    def touchy(output, target):
        loss = F.cross_entropy(output, target)
        if loss.item() > 5.0:
            raise RuntimeError("the loss went above 5")
        return loss
    """
)

LOCAL_ENGINES = [
    pytest.param(EngineChoice("sequential"), id="sequential"),
    pytest.param(EngineChoice("vectorized", workers=1), id="vectorized"),
    pytest.param(EngineChoice("vectorized", workers=2), id="vectorized-2-workers"),
]
ENGINES = [
    *LOCAL_ENGINES,
    pytest.param(EngineChoice("ray", workers=2), id="ray", marks=pytest.mark.ray),
]


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "contractmodels.py").write_text(USER_MODULE)
    return tmp_path


def plan_and_work(loss: str | None = None, optimizer: str = "momentum") -> tuple[SweepPlan, object]:
    work = load_workload(
        "contractmodels:make_model", "contractmodels:make_data", None, loss, 0.1, print
    )
    definition = SweepDefinition(
        "contractmodels:make_model",
        work.data_name,
        loss or "cross-entropy",
        1.5,
        0.5,
        0.1,
        optimizer,
        0.9 if optimizer == "momentum" else 0.0,
        1e-4,
        None,
        None,
        0,
    )
    grid = product_grid((0.05, 0.2, 50.0), (16, 64), 2)
    return SweepPlan("contract", definition, grid), work


def store_contents(path: Path) -> list[tuple[object, ...]]:
    """Every trial with its curve, as stored (NULL for a non-finite number)."""
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT t.batch_size, t.lr, t.repeat, t.seed, t.status, t.diverged_iteration, "
        "t.final_val_loss, t.final_val_accuracy, t.best_val_accuracy, t.test_accuracy, "
        "p.iteration, p.epoch, p.train_loss, p.val_loss, p.val_accuracy "
        "FROM trials t LEFT JOIN points p ON p.trial_id = t.id "
        "ORDER BY t.batch_size, t.lr, t.repeat, p.iteration"
    ).fetchall()
    db.close()
    return rows


def assert_same_rows(got: list[tuple[object, ...]], want: list[tuple[object, ...]]) -> None:
    """Equal rows, floats to 1e-5 relative (the vectorized engine's grouped products)."""
    assert len(got) == len(want)
    for row, expected in zip(got, want, strict=True):
        assert len(row) == len(expected)
        for value, wanted in zip(row, expected, strict=True):
            if isinstance(wanted, float) and isinstance(value, float):
                assert math.isclose(value, wanted, rel_tol=1e-5, abs_tol=1e-7), (row, expected)
            else:
                assert value == wanted, (row, expected)


@pytest.mark.parametrize("choice", ENGINES)
def test_every_engine_gives_the_store_of_the_sequential_engine(
    user: Path, choice: EngineChoice
) -> None:
    plan, work = plan_and_work()
    cpu = torch.device("cpu")
    with Store.open(user / "sequential.sqlite") as store:
        run_sweep(store, plan, work, cpu, engine=EngineRequest("sequential"))  # type: ignore[arg-type]
    request = EngineRequest(choice.engine, choice.workers)
    with Store.open(user / "other.sqlite") as store:
        run_sweep(store, plan, work, cpu, engine=request)  # type: ignore[arg-type]
    expected = store_contents(user / "sequential.sqlite")
    assert len({row[:3] for row in expected}) == len(plan.grid)
    assert {row[4] for row in expected} == {"done", "diverged"}  # lr 50 diverges
    assert_same_rows(store_contents(user / "other.sqlite"), expected)


def collect(engine: Engine, jobs: list, setup: TrainingSetup) -> Iterator[tuple[str, object]]:  # type: ignore[type-arg]
    """The engine's reports, in order."""
    events: list[tuple[str, object]] = []
    engine.run(
        jobs,
        setup,
        EngineEvents(
            on_done=lambda key, outcome: events.append(("done", (key, outcome))),
            on_start=lambda keys: events.append(("start", tuple(keys))),
            on_check=lambda key, point, progress: events.append(("check", key)),
        ),
    )
    return iter(events)


def setup_and_jobs(
    loss: str | None = None, optimizer: str = "momentum"
) -> tuple[TrainingSetup, list]:  # type: ignore[type-arg]
    plan, work = plan_and_work(loss, optimizer)
    setup = TrainingSetup(
        work.make_model,  # type: ignore[attr-defined]
        work.loss_fn,  # type: ignore[attr-defined]
        work.train,  # type: ignore[attr-defined]
        work.val,  # type: ignore[attr-defined]
        work.test,  # type: ignore[attr-defined]
        torch.device("cpu"),
    )
    return setup, trial_jobs(plan.definition, plan.grid, len(setup.train))


@pytest.mark.parametrize("choice", LOCAL_ENGINES)
def test_each_job_is_started_then_reported_once(user: Path, choice: EngineChoice) -> None:
    setup, jobs = setup_and_jobs()
    started: list[TrialKey] = []
    done: list[TrialKey] = []
    for kind, value in collect(make_engine(choice), jobs, setup):
        if kind == "start":
            started += value  # type: ignore[arg-type]
        elif kind == "done":
            key, _ = value  # type: ignore[misc]
            assert key in started and key not in done
            done.append(key)
        else:
            assert value in started and value not in done
    assert sorted(done) == sorted(job.key for job in jobs)


@pytest.mark.parametrize("choice", LOCAL_ENGINES)
def test_a_trial_that_raises_fails_with_its_message_and_the_others_go_on(
    user: Path, choice: EngineChoice
) -> None:
    setup, jobs = setup_and_jobs(loss="contractmodels:touchy", optimizer="sgd")
    outcomes: dict[TrialKey, TrialOutcome] = {}
    for kind, value in collect(make_engine(choice), jobs, setup):
        if kind == "done":
            key, outcome = value  # type: ignore[misc]
            outcomes[key] = outcome
    assert len(outcomes) == len(jobs)
    failed = {key for key, o in outcomes.items() if o.status == "failed"}
    for key in failed:
        assert outcomes[key].error == "RuntimeError: the loss went above 5"
    assert {key for key in outcomes if key.lr == 50.0} <= failed
    # A plain trial fails alone; a stack that raises fails the trials it had not finished.
    survivors = {key for key, o in outcomes.items() if o.status == "done"}
    if choice.engine == "sequential":
        assert failed == {key for key in outcomes if key.lr == 50.0}
        assert len(survivors) == len(jobs) - len(failed)
    else:
        assert survivors == set() or all(key.lr != 50.0 for key in survivors)


def test_a_failed_trial_is_stored_with_its_error_and_retried_by_a_rerun(user: Path) -> None:
    plan, work = plan_and_work(loss="contractmodels:touchy", optimizer="sgd")
    plan = dataclasses.replace(plan, grid=product_grid((0.05, 50.0), (16,), 1))
    cpu = torch.device("cpu")
    with Store.open(user / "s.sqlite") as store:
        trials = run_sweep(store, plan, work, cpu, engine=EngineRequest("sequential"))  # type: ignore[arg-type]
        by_lr = {t.lr: t for t in trials}
        assert by_lr[0.05].status == "done"
        assert by_lr[50.0].status == "failed"
        assert by_lr[50.0].error == "RuntimeError: the loss went above 5"
        assert store.count_running("contract") == 0
        ran: list[TrialKey] = []
        from lrkit.sweep.runner import SweepEvents

        run_sweep(
            store,
            plan,
            work,  # type: ignore[arg-type]
            cpu,
            SweepEvents(on_trial_end=lambda key, outcome: ran.append(key)),
            engine=EngineRequest("sequential"),
        )
        assert ran == [TrialKey(16, 50.0, 0)]  # the finished trial is kept, the failed retried


@pytest.mark.parametrize("choice", LOCAL_ENGINES)
def test_k_more_epochs_from_checkpoints_on_any_engine_equal_one_longer_run(
    user: Path, choice: EngineChoice
) -> None:
    setup, jobs = setup_and_jobs()
    jobs = [j for j in jobs if j.key.lr != 50.0]
    longer = [
        dataclasses.replace(j, plan=dataclasses.replace(j.plan, keep_checkpoint=True)) for j in jobs
    ]
    shorter = [dataclasses.replace(j, plan=dataclasses.replace(j.plan, epochs=1.0)) for j in longer]

    def outcomes(engine: Engine, todo: list) -> dict[TrialKey, TrialOutcome]:  # type: ignore[type-arg]
        found: dict[TrialKey, TrialOutcome] = {}
        engine.run(todo, setup, EngineEvents(on_done=lambda k, o: found.__setitem__(k, o)))
        return found

    direct = outcomes(SequentialEngine(), longer)
    first = outcomes(StackedEngine(1), shorter)  # started on the vectorized engine
    more = [
        dataclasses.replace(j, plan=dataclasses.replace(j.plan, start=first[j.key].checkpoint))
        for j in longer
    ]
    resumed = outcomes(make_engine(choice), more)
    for key, outcome in direct.items():
        assert resumed[key].status == outcome.status == "done"
        assert outcome.checkpoint is not None and resumed[key].checkpoint is not None
        for name, value in outcome.checkpoint.model.items():
            torch.testing.assert_close(
                resumed[key].checkpoint.model[name], value, rtol=1e-5, atol=1e-6
            )
        assert resumed[key].points[-1].epoch == outcome.points[-1].epoch == 1.5
