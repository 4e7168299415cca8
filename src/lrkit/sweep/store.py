"""The results store: one SQLite file (stdlib ``sqlite3``, WAL mode).

Tables: ``meta`` (what this file is), ``sweeps`` (name and definition), ``trials`` (one row
per (sweep, batch size, lr, repeat): status, seed, wall time, final metrics, and what was
raised when training failed) and ``points`` (the curve of each trial). A trial's row and all
its points are committed in one transaction when it ends, so a crash or ``kill -9`` at any
moment loses no finished trial and leaves the file consistent; a trial that was running is
found in state ``running`` and run again, and so is one that failed (its cause may have been
fixed since).

Opened to write (a sweep), a store is created if new and brought up to the current schema
(:mod:`lrkit.sweep.store_schema`); creating it is race-free, so sweeps started at the same
moment on one new file all succeed. Opened to read (listings, reports), it is never written,
whatever its version, and it can be read where nothing can be written (read-only media). A
path that is not a file (a folder, ``/dev/null``), a file that is not a store, a newer lrkit's
store or a damaged one is refused, untouched, with a message that names the file and what is
wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrkit.errors import LrkitValueError, quoted
from lrkit.sweep import store_schema as schema
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.store_schema import SCHEMA_VERSION, damaged, store_error
from lrkit.training.loop import CurvePoint, TrialOutcome

TIMEOUT_SECONDS = 30.0
"""How long an open or a write waits for another process's transaction to end."""


@dataclass(frozen=True)
class StoredTrial:
    """A trial as stored: its key, status, metrics, curve and, if it failed, what was raised."""

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
    error: str | None = None
    """For a failed trial: what training raised, as ``TypeName: message``."""

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
            "error": self.error,
        }


_TRIAL_FIELDS = (
    "sweep",
    "batch_size",
    "lr",
    "repeat",
    "seed",
    "status",
    *schema.TRIAL_RESULT_COLUMNS,
    "error",
)
"""The fields of ``StoredTrial`` that ``Store.trials`` selects, in its query's order."""


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
    """A results store; open with :meth:`open`, close with :meth:`close` (or ``with``).

    One connection, used from one thread; several processes (or connections) may write the
    same file at once: every write is its own immediate transaction."""

    def __init__(self, connection: sqlite3.Connection, path: Path, version: int) -> None:
        self._db = connection
        self.path = path
        self.version = version
        """The schema version of the file (older than the current one only when read)."""

    @classmethod
    def open(cls, path: Path, *, create: bool = True, read_only: bool = False) -> Store:
        """Open an lrkit store to write (created when missing, if ``create``; an older
        version migrated) or, with ``read_only``, to read as it is, never written. A file that
        is not a store, or not one this lrkit can use, is refused untouched."""
        schema.check_path(path, writing=not read_only, must_exist=read_only or not create)
        return cls._open_to_read(path) if read_only else cls._open_to_write(path)

    @classmethod
    def _open_to_read(cls, path: Path) -> Store:
        with schema.refusing(path, writing=False):
            db = _read_only_connection(path)
        try:
            version = schema.inspect(db, path, writing=False)
            if version is None:
                empty = path.stat().st_size == 0
                what = "an empty file" if empty else "an SQLite database without lrkit's tables"
                raise schema.not_a_store(path, what, writing=False)
        except BaseException:
            db.close()
            raise
        return cls(db, path, version)

    @classmethod
    def _open_to_write(cls, path: Path) -> Store:
        if path.exists() and path.stat().st_size > 0:
            # A first look that cannot write: a file that is not ours is never opened for writing.
            with schema.refusing(path, writing=True):
                look = _read_only_connection(path)
            try:
                schema.inspect(look, path, writing=True)
            finally:
                look.close()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=TIMEOUT_SECONDS, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys=OFF")  # a migration rebuilds referenced tables
            # Under the write lock, look again: another process may have created the store
            # since (an empty database, even a 0-byte file, is a new store).
            with _transaction(db):
                version = schema.inspect(db, path, writing=True)
                if version is None:
                    schema.create(db)
                else:
                    schema.migrate(db, version)
            _use_wal(db)
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            db.close()
            raise
        return cls(db, path, SCHEMA_VERSION)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """SQLite's word that the contents are wrong (a missing table, a corrupt page), as
        the store's one-line refusal; a failure of the moment (locked, disk full) stays one."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if schema.is_damage(exc):
                raise damaged(self.path, str(exc)) from None
            raise

    def _definition(self, name: str, text: object) -> dict[str, Any]:
        """A stored definition, read back; one that is not a JSON object is damage."""
        not_json = damaged(self.path, f"sweep {quoted(name)} has a definition that is not JSON")
        if not isinstance(text, str):
            raise not_json
        try:
            definition = json.loads(text)
        except ValueError:
            raise not_json from None
        if not isinstance(definition, dict):
            raise damaged(
                self.path, f"sweep {quoted(name)} has a definition that is not a JSON object"
            )
        return definition

    # sweeps
    def sweep(self, name: str, definition: SweepDefinition) -> int:
        """The id of sweep ``name``, created with ``definition`` if new. An existing sweep
        with another definition is refused, naming every difference: results never mix."""
        # Looked up and created in one write transaction: two sweeps that start at the same
        # moment on one store find the same sweep (one creates it, the other reads it).
        with self._reading(), _transaction(self._db):
            row = self._db.execute(
                "SELECT id, definition FROM sweeps WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                cursor = self._db.execute(
                    "INSERT INTO sweeps (name, definition, created_at) VALUES (?, ?, ?)",
                    (name, json.dumps(definition.to_json(), sort_keys=True), _now()),
                )
                return int(cursor.lastrowid or 0)
            stored = self._definition(name, row[1])
        self._refuse_another(name, definition, stored)
        return int(row[0])

    def check_definition(self, name: str, definition: SweepDefinition) -> None:
        """Refuse, without writing, a ``definition`` that sweep ``name`` could not resume: one
        the store holds under that name with another definition (as ``sweep`` would)."""
        with self._reading():
            row = self._db.execute(
                "SELECT definition FROM sweeps WHERE name = ?", (name,)
            ).fetchone()
        if row is not None:
            self._refuse_another(name, definition, self._definition(name, row[0]))

    def _refuse_another(
        self, name: str, definition: SweepDefinition, stored: dict[str, Any]
    ) -> None:
        differences = definition.differences(stored)
        if differences:
            raise LrkitValueError(
                f"store {self.path} already holds sweep {quoted(name)} with another definition ("
                + "; ".join(differences)
                + "); give another --name or --store to start a new sweep"
            )

    def sweeps(self) -> list[SweepRow]:
        with self._reading():
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
                result.append(SweepRow(name, self._definition(name, definition), created, counts))
        return result

    def check_sweep(self, name: str) -> None:
        """Refuse a sweep name the store does not hold, listing the ones it does."""
        with self._reading():
            names = [n for (n,) in self._db.execute("SELECT name FROM sweeps ORDER BY id")]
        if name in names:
            return
        held = ", ".join(quoted(n) for n in names) if names else "none"
        message = (
            f"{quoted(name)}: store {self.path} has no sweep of that name (its sweeps: {held})"
        )
        raise LrkitValueError(f"sweep {message}", cli_message=f"--name {message}")

    # trials
    def finished(self, sweep_id: int) -> set[TrialKey]:
        """Trials done or diverged: they are not run again. A failed trial is run again (the
        cause may have been fixed), as is one found running (the run that had it stopped)."""
        with self._reading():
            rows = self._db.execute(
                "SELECT batch_size, lr, repeat FROM trials "
                "WHERE sweep_id = ? AND status IN ('done', 'diverged')",
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
                "status = 'running', seed = excluded.seed, started_at = excluded.started_at, "
                "error = NULL",
                (sweep_id, key.batch_size, key.lr, key.repeat, seed, _now()),
            )

    def forget_running(self, sweep_id: int, key: TrialKey) -> None:
        """Take out a trial marked running that will not end (its run was interrupted or
        failed), with any points of an earlier run: the store keeps finished trials only,
        and a rerun runs this one. A row that has ended since is kept."""
        where = "sweep_id = ? AND batch_size = ? AND lr = ? AND repeat = ? AND status = 'running'"
        values = (sweep_id, key.batch_size, key.lr, key.repeat)
        with _transaction(self._db):
            self._db.execute(
                f"DELETE FROM points WHERE trial_id IN (SELECT id FROM trials WHERE {where})",
                values,
            )
            self._db.execute(f"DELETE FROM trials WHERE {where}", values)

    def save_trial(self, sweep_id: int, key: TrialKey, outcome: TrialOutcome) -> None:
        """The trial's final row and all its points, in one transaction. A failed trial may
        have no points (training raised before the first check)."""
        checks = outcome.points[1:] or outcome.points
        accuracies = [p.val_accuracy for p in checks if math.isfinite(p.val_accuracy)]
        last = outcome.points[-1] if outcome.points else None
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
                "best_val_accuracy = ?, test_accuracy = ?, error = ? WHERE id = ?",
                (
                    outcome.status,
                    _now(),
                    outcome.seconds,
                    outcome.diverged_iteration,
                    None if last is None else _finite(last.val_loss),
                    None if last is None else _finite(last.val_accuracy),
                    max(accuracies) if accuracies else None,
                    outcome.test_accuracy,
                    outcome.error,
                    trial_id,
                ),
            )

    def trials(self, name: str | None = None, *, with_points: bool = True) -> list[StoredTrial]:
        """Finished and failed trials (of sweep ``name``, or all), ordered by sweep, batch
        size, lr, repeat."""
        # A version-1 store, read as it is, has no error column: none of its trials failed.
        error = "t.error" if self.version >= 2 else "NULL"
        results = ", ".join(f"t.{column}" for column in schema.TRIAL_RESULT_COLUMNS)
        query = (
            "SELECT t.id, s.name, t.batch_size, t.lr, t.repeat, t.seed, t.status, "
            f"{results}, {error} FROM trials t JOIN sweeps s ON s.id = t.sweep_id "
            "WHERE t.status != 'running'"
            + (" AND s.name = ?" if name is not None else "")
            + " ORDER BY s.id, t.batch_size, t.lr, t.repeat"
        )
        with self._reading():
            rows = self._db.execute(query, (name,) if name is not None else ()).fetchall()
            result = []
            for trial_id, *fields in rows:
                points = self._points(trial_id) if with_points else ()
                result.append(
                    StoredTrial(**dict(zip(_TRIAL_FIELDS, fields, strict=True)), points=points)
                )
        return result

    def count_running(self, name: str) -> int:
        with self._reading():
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


def _read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection that cannot write the file. It still sees what a running sweep has
    committed (SQLite may create the -wal and -shm side files for that; the main file is
    never written).

    Where no file can be created beside the store (read-only media, a folder this user
    cannot write), SQLite cannot make the -shm index that reading a WAL store needs, and
    refuses to open it. Nobody can write the store there either, so it is then read as
    immutable: as the main file holds it, which is all of it unless a write-ahead log was
    left beside it (a store copied while a sweep ran); that one is refused rather than read
    without the trials its log holds."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=TIMEOUT_SECONDS, isolation_level=None)
    try:
        db.execute("PRAGMA schema_version")
        return db
    except sqlite3.DatabaseError as exc:
        db.close()
        if not schema.cannot_open(exc) or os.access(path.parent, os.W_OK):
            raise
    log = path.with_name(path.name + "-wal")
    if log.exists() and log.stat().st_size > 0:
        raise store_error(
            path,
            f"cannot be read here: its write-ahead log {log.name} is read through an index "
            "that cannot be created in this folder; copy the store and its -wal file to a "
            "folder that can be written",
        )
    return sqlite3.connect(
        uri + "?mode=ro&immutable=1", uri=True, timeout=TIMEOUT_SECONDS, isolation_level=None
    )


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, rolled back on any exception. ``BEGIN`` is inside the ``try``
    and the rollback asks whether a transaction is open: a Ctrl-C or SIGTERM handler raises
    between two statements, so it may land just after ``BEGIN`` or just after ``COMMIT``,
    and neither may leave the connection inside a transaction (every later one, the
    clean-up of a stopped run's rows included, would then fail)."""
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL mode (a no-op once it is). Unlike a transaction, the switch
    does not wait for other connections: while one is reading, SQLite answers "database is
    locked" at once, which happens when several sweeps open a new store together. So it is
    retried, for as long as a transaction would wait."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not schema.is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


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
