"""The SQLite results store: round trips, resume bookkeeping, failed trials, the migration from
version 1, stores opened by several sweeps at once, and refusing what is not ours."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lrkit.errors import LrkitValueError
from lrkit.sweep import store_schema
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.store import Store
from lrkit.training.loop import CurvePoint, TrialOutcome
from store_files import V1_SCHEMA, digest, schema_version

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


FAILED = TrialOutcome(
    "failed", None, OUTCOME.points[:2], None, 0.3, "RuntimeError: CUDA error: out of memory"
)


def test_a_failed_trial_is_stored_with_its_error_and_run_again(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite") as store:
        sweep = store.sweep("default", DEFINITION)
        key = TrialKey(16, 0.5, 0)
        store.mark_running(sweep, key, seed=0)
        store.save_trial(sweep, key, FAILED)
        assert store.finished(sweep) == set()  # a rerun retries it: the cause may be fixed
        (trial,) = store.trials()
        assert (trial.status, trial.error) == ("failed", "RuntimeError: CUDA error: out of memory")
        assert [p.iteration for p in trial.points] == [0, 10]
        assert trial.to_json()["error"] == "RuntimeError: CUDA error: out of memory"
        store.mark_running(sweep, key, seed=0)  # the rerun
        assert store.trials() == []  # running again: neither finished nor failed
        store.save_trial(sweep, key, OUTCOME)
        (trial,) = store.trials()
    assert (trial.status, trial.error) == ("done", None)
    assert len(trial.points) == 3


def test_a_trial_that_failed_before_its_first_check_has_no_points(tmp_path: Path) -> None:
    early = TrialOutcome("failed", None, (), None, 0.01, "ValueError: bad shape")
    with Store.open(tmp_path / "s.sqlite") as store:
        sweep = store.sweep("default", DEFINITION)
        store.mark_running(sweep, TrialKey(16, 0.5, 0), seed=0)
        store.save_trial(sweep, TrialKey(16, 0.5, 0), early)
        (trial,) = store.trials()
    assert (trial.status, trial.error, trial.points) == ("failed", "ValueError: bad shape", ())
    assert (trial.final_val_accuracy, trial.best_val_accuracy) == (None, None)


def table_shapes(path: Path) -> dict[str, tuple[object, ...]]:
    """Every table's columns (name, type, not null, default, key), indexes and foreign keys."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: (
                db.execute(
                    'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)',
                    (name,),
                ).fetchall(),
                db.execute('SELECT "unique", origin FROM pragma_index_list(?)', (name,)).fetchall(),
                db.execute(
                    'SELECT "table", "from", "to" FROM pragma_foreign_key_list(?)', (name,)
                ).fetchall(),
            )
            for name in sorted(names)
        }
    finally:
        db.close()


def test_the_schema_has_the_columns_the_store_checks(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.sqlite").close()
    shapes = table_shapes(tmp_path / "s.sqlite")
    found = {table: tuple(c[0] for c in shape[0]) for table, shape in shapes.items()}
    assert found == store_schema.columns(store_schema.SCHEMA_VERSION)


def make_v1_store(path: Path) -> None:
    """A version-1 store with two sweeps and trials done, diverged and running, with points."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_SCHEMA)
    definition = json.dumps(DEFINITION.to_json(), sort_keys=True)
    db.executemany(
        "INSERT INTO sweeps VALUES (?, ?, ?, ?)",
        [
            (1, "default", definition, "2025-01-01T00:00:00+00:00"),
            (2, "wide", definition, "2025-01-02T00:00:00+00:00"),
        ],
    )
    db.executemany(
        "INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (1, 1, 16, 0.1, 0, 0, "done", "t0", "t1", 1.5, None, 1.1, 0.55, 0.6, 0.58),
            (2, 1, 16, 8.0, 0, 0, "diverged", "t0", "t1", 0.4, 17, None, None, 0.2, None),
            (3, 1, 64, 0.1, 0, 0, "running", "t0", None, None, None, None, None, None, None),
            (4, 2, 32, 0.3, 1, 1, "done", "t0", "t1", 2.5, None, 0.9, 0.7, 0.72, 0.69),
        ],
    )
    db.executemany(
        "INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)",
        [
            (1, 0, 0.0, None, 2.3, 0.1),
            (1, 10, 1.0, 1.5, 1.4, 0.6),
            (1, 20, 2.0, 0.9, 1.1, 0.55),
            (2, 0, 0.0, None, 2.3, 0.1),
            (2, 10, 1.0, None, None, 0.2),
            (4, 0, 0.0, None, 2.2, 0.12),
            (4, 30, 1.0, 1.0, 0.9, 0.7),
        ],
    )
    db.commit()
    db.close()


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table (trials by their version-1 columns; meta without the version)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "meta": db.execute(
                "SELECT * FROM meta WHERE key != 'schema_version' ORDER BY key"
            ).fetchall(),
            "sweeps": db.execute("SELECT * FROM sweeps ORDER BY id").fetchall(),
            "trials": db.execute(
                f"SELECT {', '.join(store_schema.TRIALS_V1_COLUMNS)} FROM trials ORDER BY id"
            ).fetchall(),
            "points": db.execute("SELECT * FROM points ORDER BY trial_id, iteration").fetchall(),
        }
    finally:
        db.close()


def read_everything(path: Path) -> tuple[object, ...]:
    with Store.open(path, read_only=True) as store:
        return (
            store.sweeps(),
            store.trials(),
            store.count_running("default"),
        )


def test_a_version_1_store_is_read_as_it_is_and_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    make_v1_store(path)
    before = digest(path)
    sweeps, trials, running = read_everything(path)
    assert digest(path) == before and schema_version(path) == "1"
    assert [s.name for s in sweeps] == ["default", "wide"]
    assert sweeps[0].counts == {"done": 1, "diverged": 1, "running": 1}
    assert [(t.sweep, t.batch_size, t.lr, t.status) for t in trials] == [
        ("default", 16, 0.1, "done"),
        ("default", 16, 8.0, "diverged"),
        ("wide", 32, 0.3, "done"),
    ]
    assert all(t.error is None for t in trials) and running == 1
    assert [len(t.points) for t in trials] == [3, 2, 2]


def test_a_version_1_store_opened_to_write_is_migrated_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    make_v1_store(path)
    rows, read = dump(path), read_everything(path)
    with Store.open(path) as store:
        assert store.version == 2
        assert store.finished(1) == {TrialKey(16, 0.1, 0), TrialKey(16, 8.0, 0)}
    assert schema_version(path) == "2"
    assert dump(path) == rows  # every row and point, ids included
    assert read_everything(path) == read
    fresh = tmp_path / "fresh.sqlite"
    Store.open(fresh).close()
    assert table_shapes(path) == table_shapes(fresh)
    with Store.open(path) as store:  # and it now takes what version 2 adds
        store.mark_running(1, TrialKey(64, 0.1, 0), seed=0)
        store.save_trial(1, TrialKey(64, 0.1, 0), FAILED)
        failed = [t for t in store.trials("default") if t.status == "failed"]
    assert [(t.batch_size, t.error) for t in failed] == [(64, FAILED.error)]


def test_a_migration_that_fails_leaves_the_version_1_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v1.sqlite"
    make_v1_store(path)
    rows = dump(path)
    real_step = store_schema.MIGRATIONS[1]

    def step_then_crash(db: sqlite3.Connection) -> None:
        real_step(db)
        raise OSError("disk gone")

    monkeypatch.setitem(store_schema.MIGRATIONS, 1, step_then_crash)
    with pytest.raises(OSError, match="disk gone"):
        Store.open(path)
    assert schema_version(path) == "1" and dump(path) == rows
    monkeypatch.setitem(store_schema.MIGRATIONS, 1, real_step)
    with pytest.raises(sqlite3.IntegrityError):  # version 1 still refuses a failed trial
        db = sqlite3.connect(path)
        try:
            db.execute("UPDATE trials SET status = 'failed' WHERE id = 1")
        finally:
            db.close()


def open_and_record(path: Path) -> None:
    """What a sweep does first on its store: open it, find its sweep, record a trial."""
    with Store.open(path) as store:
        sweep = store.sweep("default", DEFINITION)
        store.mark_running(sweep, TrialKey(16, 0.5, 0), seed=0)
        store.save_trial(sweep, TrialKey(16, 0.5, 0), OUTCOME)


def check_one_sweep_one_trial(path: Path) -> None:
    with Store.open(path, read_only=True) as store:
        assert [s.name for s in store.sweeps()] == ["default"]
        assert [t.key for t in store.trials()] == [TrialKey(16, 0.5, 0)]


def open_in_threads_at_once(path: Path, count: int) -> list[BaseException]:
    """``count`` threads released together by a barrier, each opening ``path`` and recording;
    what they raised (collected: a thread's own exception would be lost)."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def opener() -> None:
        start.wait()
        try:
            open_and_record(path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_threads_opening_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    for attempt in range(15):
        path = tmp_path / f"new-{attempt}.sqlite"
        assert open_in_threads_at_once(path, 6) == []
        check_one_sweep_one_trial(path)


PROCESS_OPENER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_store import open_and_record
print("ready", flush=True)
for line in sys.stdin:
    try:
        open_and_record(Path(line.strip()))
        print("ok", flush=True)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}".replace("\\n", " "), flush=True)
"""


@pytest.mark.slow
def test_processes_opening_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # Each process imports lrkit once, then opens the path it is given the moment it reads
    # it: every process gets the same new path at the same time, round after round.
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_OPENER, str(Path(__file__).parent)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        assert [p.stdout.readline().strip() for p in processes if p.stdout] == ["ready"] * 3
        for attempt in range(30):
            path = tmp_path / f"new-{attempt}.sqlite"
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(f"{path}\n")
                process.stdin.flush()
            answers = [p.stdout.readline().strip() for p in processes if p.stdout]
            assert answers == ["ok"] * 3, f"attempt {attempt}: {answers}"
            check_one_sweep_one_trial(path)
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=60)


class _StopAfter:
    """A connection that raises KeyboardInterrupt once, just after ``statement`` has run:
    where a Ctrl-C or SIGTERM handler can land between two statements of a transaction."""

    def __init__(self, db: sqlite3.Connection, statement: str) -> None:
        self._db = db
        self._statement = statement
        self.fired = False

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        cursor = self._db.execute(sql, *args)
        if not self.fired and sql == self._statement:
            self.fired = True
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


@pytest.mark.parametrize("statement", ["BEGIN IMMEDIATE", "COMMIT"])
def test_a_stop_between_statements_leaves_no_transaction_and_no_running_row(
    tmp_path: Path, statement: str
) -> None:
    """A stop landing just after BEGIN (or COMMIT) of the next write: the run's clean-up
    still takes its running rows out, and the store stays writable."""
    from lrkit.sweep.runner import RunningRows

    with Store.open(tmp_path / "s.sqlite") as store:
        sweep_id = store.sweep("s", DEFINITION)
        rows = RunningRows(store)
        keys = [TrialKey(16, lr, 0) for lr in (0.1, 0.2, 0.3)]
        real = store._db
        with pytest.raises(KeyboardInterrupt), rows.forgotten_if_stopped():
            for key in keys[:2]:
                rows.start(sweep_id, key, 0)
            store._db = _StopAfter(real, statement)  # type: ignore[assignment]
            rows.start(sweep_id, keys[2], 0)
        store._db = real
        assert not real.in_transaction
        assert store.finished(sweep_id) == set()
        count = real.execute("SELECT COUNT(*) FROM trials WHERE status = 'running'")
        assert count.fetchone() == (0,)
        store.mark_running(sweep_id, keys[0], 0)
        store.save_trial(sweep_id, keys[0], OUTCOME)
        assert store.finished(sweep_id) == {keys[0]}
