"""The SQLite results store: round trips, resume bookkeeping, and refusing what is not ours."""

from __future__ import annotations

import hashlib
import math
import sqlite3
from pathlib import Path

import pytest

from lrkit.errors import LrkitValueError
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.store import Store
from lrkit.training.loop import CurvePoint, TrialOutcome

DEFINITION = SweepDefinition(
    "mnist-mlp", "MNIST sample", "cross-entropy", 2.0, 0.5, 1 / 12, "sgd", 0.0, 0.0, None, None, 0
)
OUTCOME = TrialOutcome(
    "done",
    None,
    (
        CurvePoint(0, 0.0, math.nan, 2.3, 0.1),
        CurvePoint(10, 1.0, 1.5, 1.4, 0.6),
        CurvePoint(20, 2.0, 0.9, 1.1, 0.55),
    ),
    0.58,
    1.25,
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_of_a_trial(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite") as store:
        sweep = store.sweep("default", DEFINITION)
        key = TrialKey(16, 0.5, 0)
        store.mark_running(sweep, key, seed=7)
        assert store.finished(sweep) == set()
        assert store.count_running("default") == 1
        store.save_trial(sweep, key, OUTCOME)
        assert store.finished(sweep) == {key}
        (trial,) = store.trials("default")
    assert (trial.batch_size, trial.lr, trial.repeat, trial.seed, trial.status) == (
        16,
        0.5,
        0,
        7,
        "done",
    )
    assert trial.final_val_accuracy == 0.55
    assert trial.best_val_accuracy == 0.6
    assert trial.test_accuracy == 0.58
    assert trial.final_val_loss == 1.1
    assert [p.iteration for p in trial.points] == [0, 10, 20]
    assert math.isnan(trial.points[0].train_loss)


def test_the_store_is_in_wal_mode(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.sqlite").close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_trial_saved_again_replaces_its_points(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite") as store:
        sweep = store.sweep("default", DEFINITION)
        key = TrialKey(16, 0.5, 0)
        for _ in range(2):
            store.mark_running(sweep, key, seed=0)
            store.save_trial(sweep, key, OUTCOME)
        (trial,) = store.trials()
    assert len(trial.points) == 3


def test_same_definition_same_sweep_other_definition_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store:
        first = store.sweep("default", DEFINITION)
        assert store.sweep("default", DEFINITION) == first
        other = SweepDefinition(
            "mnist-mlp",
            "MNIST sample",
            "cross-entropy",
            30.0,
            0.5,
            1 / 12,
            "momentum",
            0.9,
            0.0,
            None,
            None,
            0,
        )
        with pytest.raises(LrkitValueError) as info:
            store.sweep("default", other)
        message = str(info.value)
        assert "--epochs: the store has 2.0, this run 30.0" in message
        assert "--optimizer: the store has 'sgd', this run 'momentum'" in message
        assert store.sweep("longer", other) != first  # another name is another sweep


def test_a_text_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("not a database")
    before = digest(path)
    with pytest.raises(LrkitValueError, match="is not an lrkit results store"):
        Store.open(path)
    assert digest(path) == before


def test_another_programs_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE things (x)")
    db.commit()
    db.close()
    before = digest(path)
    with pytest.raises(LrkitValueError, match="is not an lrkit results store"):
        Store.open(path)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_opening_a_missing_store_for_reading_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LrkitValueError, match="does not exist"):
        Store.open(tmp_path / "none.sqlite", create=False)


def test_a_diverged_trial_is_stored_with_its_iteration(tmp_path: Path) -> None:
    diverged = TrialOutcome("diverged", 17, OUTCOME.points[:2], None, 0.4)
    with Store.open(tmp_path / "s.sqlite") as store:
        sweep = store.sweep("default", DEFINITION)
        key = TrialKey(16, 8.0, 0)
        store.mark_running(sweep, key, seed=0)
        store.save_trial(sweep, key, diverged)
        assert store.finished(sweep) == {key}  # not run again on resume
        (trial,) = store.trials()
    assert (trial.status, trial.diverged_iteration, trial.test_accuracy) == ("diverged", 17, None)
    assert trial.to_json()["status"] == "diverged"
