"""The results store: one SQLite file (stdlib ``sqlite3``, WAL mode).

Tables: ``meta`` (what this file is), ``sweeps`` (name and definition), ``trials`` (one row
per (sweep, batch size, lr, repeat): status, seed, wall time, final metrics) and ``points``
(the curve of each trial). A trial's row and all its points are committed in one transaction
when it ends, so a crash or ``kill -9`` at any moment loses no finished trial and leaves the
file consistent; a trial that was running is found in state ``running`` and run again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrkit.errors import LrkitValueError
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.training.loop import CurvePoint, TrialOutcome

MAGIC = "lrkit results store"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    batch_size INTEGER NOT NULL,
    lr REAL NOT NULL,
    repeat INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'diverged')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    seconds REAL,
    diverged_iteration INTEGER,
    final_val_loss REAL,
    final_val_accuracy REAL,
    best_val_accuracy REAL,
    test_accuracy REAL,
    UNIQUE (sweep_id, batch_size, lr, repeat)
);
CREATE TABLE points (
    trial_id INTEGER NOT NULL REFERENCES trials(id),
    iteration INTEGER NOT NULL,
    epoch REAL NOT NULL,
    train_loss REAL,
    val_loss REAL,
    val_accuracy REAL,
    PRIMARY KEY (trial_id, iteration)
);
"""


@dataclass(frozen=True)
class StoredTrial:
    """A trial as stored: its key, status, metrics and curve."""

    sweep: str
    batch_size: int
    lr: float
    repeat: int
    seed: int
    status: str
    seconds: float | None
    diverged_iteration: int | None
    final_val_loss: float | None
    final_val_accuracy: float | None
    best_val_accuracy: float | None
    test_accuracy: float | None
    points: tuple[CurvePoint, ...]

    @property
    def key(self) -> TrialKey:
        return TrialKey(self.batch_size, self.lr, self.repeat)

    def to_json(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "batch_size": self.batch_size,
            "repeat": self.repeat,
            "status": self.status,
            "final_val_accuracy": self.final_val_accuracy,
            "best_val_accuracy": self.best_val_accuracy,
            "test_accuracy": self.test_accuracy,
            "seconds": self.seconds,
            "diverged_iteration": self.diverged_iteration,
        }


_TRIAL_FIELDS = (
    "sweep",
    "batch_size",
    "lr",
    "repeat",
    "seed",
    "status",
    "seconds",
    "diverged_iteration",
    "final_val_loss",
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
)


@dataclass(frozen=True)
class SweepRow:
    name: str
    definition: dict[str, Any]
    created_at: str
    counts: dict[str, int]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class Store:
    """A results store; open with :meth:`open`, close with :meth:`close` (or ``with``)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        """Open (or create) an lrkit store. A file that is not one is refused, untouched."""
        exists = path.exists()
        if exists:
            _check_is_store(path)
        elif not create:
            raise LrkitValueError(
                f"store {path} does not exist", cli_message=f"--store {path} does not exist"
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        if not exists:
            with _transaction(db):
                for statement in filter(str.strip, SCHEMA.split(";")):
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("magic", MAGIC), ("schema_version", str(SCHEMA_VERSION))],
                )
        return cls(db, path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # sweeps
    def sweep(self, name: str, definition: SweepDefinition) -> int:
        """The id of sweep ``name``, created with ``definition`` if new. An existing sweep
        with another definition is refused, naming every difference: results never mix."""
        row = self._db.execute(
            "SELECT id, definition FROM sweeps WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            with _transaction(self._db):
                cursor = self._db.execute(
                    "INSERT INTO sweeps (name, definition, created_at) VALUES (?, ?, ?)",
                    (name, json.dumps(definition.to_json(), sort_keys=True), _now()),
                )
            return int(cursor.lastrowid or 0)
        differences = definition.differences(json.loads(row[1]))
        if differences:
            raise LrkitValueError(
                f"store {self.path} already holds sweep {name!r} with another definition ("
                + "; ".join(differences)
                + "); give another --name or --store to start a new sweep"
            )
        return int(row[0])

    def sweeps(self) -> list[SweepRow]:
        rows = self._db.execute(
            "SELECT id, name, definition, created_at FROM sweeps ORDER BY id"
        ).fetchall()
        result = []
        for sweep_id, name, definition, created in rows:
            counts = dict(
                self._db.execute(
                    "SELECT status, COUNT(*) FROM trials WHERE sweep_id = ? GROUP BY status",
                    (sweep_id,),
                ).fetchall()
            )
            result.append(SweepRow(name, json.loads(definition), created, counts))
        return result

    # trials
    def finished(self, sweep_id: int) -> set[TrialKey]:
        """Trials already done or diverged: they are not run again."""
        rows = self._db.execute(
            "SELECT batch_size, lr, repeat FROM trials WHERE sweep_id = ? AND status != 'running'",
            (sweep_id,),
        ).fetchall()
        return {TrialKey(int(b), float(lr), int(r)) for b, lr, r in rows}

    def mark_running(self, sweep_id: int, key: TrialKey, seed: int) -> None:
        """Record that a trial started (committed at once; its points come at the end)."""
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO trials (sweep_id, batch_size, lr, repeat, seed, status, started_at) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?) "
                "ON CONFLICT (sweep_id, batch_size, lr, repeat) DO UPDATE SET "
                "status = 'running', seed = excluded.seed, started_at = excluded.started_at",
                (sweep_id, key.batch_size, key.lr, key.repeat, seed, _now()),
            )

    def save_trial(self, sweep_id: int, key: TrialKey, outcome: TrialOutcome) -> None:
        """The trial's final row and all its points, in one transaction."""
        checks = outcome.points[1:] or outcome.points
        accuracies = [p.val_accuracy for p in checks if math.isfinite(p.val_accuracy)]
        last = outcome.points[-1]
        with _transaction(self._db):
            (trial_id,) = self._db.execute(
                "SELECT id FROM trials "
                "WHERE sweep_id = ? AND batch_size = ? AND lr = ? AND repeat = ?",
                (sweep_id, key.batch_size, key.lr, key.repeat),
            ).fetchone()
            self._db.execute("DELETE FROM points WHERE trial_id = ?", (trial_id,))
            self._db.executemany(
                "INSERT INTO points "
                "(trial_id, iteration, epoch, train_loss, val_loss, val_accuracy) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        trial_id,
                        p.iteration,
                        p.epoch,
                        _finite(p.train_loss),
                        _finite(p.val_loss),
                        _finite(p.val_accuracy),
                    )
                    for p in outcome.points
                ],
            )
            self._db.execute(
                "UPDATE trials SET status = ?, finished_at = ?, seconds = ?, "
                "diverged_iteration = ?, final_val_loss = ?, final_val_accuracy = ?, "
                "best_val_accuracy = ?, test_accuracy = ? WHERE id = ?",
                (
                    outcome.status,
                    _now(),
                    outcome.seconds,
                    outcome.diverged_iteration,
                    _finite(last.val_loss),
                    _finite(last.val_accuracy),
                    max(accuracies) if accuracies else None,
                    outcome.test_accuracy,
                    trial_id,
                ),
            )

    def trials(self, name: str | None = None, *, with_points: bool = True) -> list[StoredTrial]:
        """Finished trials (of sweep ``name``, or all), ordered by sweep, batch size, lr, repeat."""
        query = (
            "SELECT t.id, s.name, t.batch_size, t.lr, t.repeat, t.seed, t.status, t.seconds, "
            "t.diverged_iteration, t.final_val_loss, t.final_val_accuracy, t.best_val_accuracy, "
            "t.test_accuracy FROM trials t JOIN sweeps s ON s.id = t.sweep_id "
            "WHERE t.status != 'running'"
            + (" AND s.name = ?" if name is not None else "")
            + " ORDER BY s.id, t.batch_size, t.lr, t.repeat"
        )
        rows = self._db.execute(query, (name,) if name is not None else ()).fetchall()
        result = []
        for trial_id, *fields in rows:
            points = self._points(trial_id) if with_points else ()
            result.append(
                StoredTrial(**dict(zip(_TRIAL_FIELDS, fields, strict=True)), points=points)
            )
        return result

    def count_running(self, name: str) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM trials t JOIN sweeps s ON s.id = t.sweep_id "
            "WHERE s.name = ? AND t.status = 'running'",
            (name,),
        ).fetchone()
        return int(count)

    def _points(self, trial_id: int) -> tuple[CurvePoint, ...]:
        rows = self._db.execute(
            "SELECT iteration, epoch, train_loss, val_loss, val_accuracy FROM points "
            "WHERE trial_id = ? ORDER BY iteration",
            (trial_id,),
        ).fetchall()
        nan = math.nan
        return tuple(
            CurvePoint(
                i, e, nan if t is None else t, nan if v is None else v, nan if a is None else a
            )
            for i, e, t, v, a in rows
        )


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _check_is_store(path: Path) -> None:
    """Refuse, without writing anything, a file that is not an lrkit store."""
    not_store = LrkitValueError(
        f"{path} is not an lrkit results store",
        cli_message=f"--store {path} is not an lrkit results store (give a new file name)",
    )
    if path.is_dir():
        raise not_store
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'magic'").fetchone()
            version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        raise not_store from None
    if row is None or row[0] != MAGIC:
        raise not_store
    if version is None or int(version[0]) > SCHEMA_VERSION:
        raise LrkitValueError(
            f"{path} was written by a newer lrkit (store schema {version and version[0]})"
        )


def summary_rows(trials: Sequence[StoredTrial]) -> list[list[str | int | float]]:
    """Table rows for listings: sweep, batch size, lr, repeat, status, accuracies, seconds."""

    def shown(value: float | None) -> str | float:
        return "-" if value is None else value

    return [
        [
            t.sweep,
            t.batch_size,
            t.lr,
            t.repeat,
            t.status,
            shown(t.final_val_accuracy),
            shown(t.best_val_accuracy),
            shown(t.test_accuracy),
            shown(t.seconds),
        ]
        for t in trials
    ]
