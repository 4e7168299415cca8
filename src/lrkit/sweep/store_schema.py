"""The results store's schema, version by version: how a file is recognised as an lrkit store
(and, when it is not, what it is), and how a store of an older version is brought up to date.

Version 1: a trial's status is running, done or diverged.
Version 2: a trial may also have failed (training raised); what was raised is kept in
``trials.error``.

Every refusal names the file and what is wrong with it, in one line, as a
:class:`~lrkit.errors.LrkitValueError` (the CLI's exit 2): a path that is not a file, a file
that is not a store, a store of a newer lrkit, a store whose tables or columns are missing or
whose pages are damaged.
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lrkit.errors import LrkitValueError, quoted, shortened

MAGIC = "lrkit results store"
SCHEMA_VERSION = 2

_TRIALS = """
CREATE TABLE {name} (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    batch_size INTEGER NOT NULL,
    lr REAL NOT NULL,
    repeat INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'diverged', 'failed')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    seconds REAL,
    diverged_iteration INTEGER,
    final_val_loss REAL,
    final_val_accuracy REAL,
    best_val_accuracy REAL,
    test_accuracy REAL,
    error TEXT,
    UNIQUE (sweep_id, batch_size, lr, repeat)
)"""

SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    _TRIALS.format(name="trials"),
    """CREATE TABLE points (
    trial_id INTEGER NOT NULL REFERENCES trials(id),
    iteration INTEGER NOT NULL,
    epoch REAL NOT NULL,
    train_loss REAL,
    val_loss REAL,
    val_accuracy REAL,
    PRIMARY KEY (trial_id, iteration)
)""",
)
"""The statements that create a store of the current version."""

TRIAL_RESULT_COLUMNS = (
    "seconds",
    "diverged_iteration",
    "final_val_loss",
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
)
"""The columns of a trial's results, in its row and in ``StoredTrial``, in this order."""
TRIALS_V1_COLUMNS = (
    "id",
    "sweep_id",
    "batch_size",
    "lr",
    "repeat",
    "seed",
    "status",
    "started_at",
    "finished_at",
    *TRIAL_RESULT_COLUMNS,
)
_COLUMNS_V1 = {
    "meta": ("key", "value"),
    "sweeps": ("id", "name", "definition", "created_at"),
    "trials": TRIALS_V1_COLUMNS,
    "points": ("trial_id", "iteration", "epoch", "train_loss", "val_loss", "val_accuracy"),
}


def columns(version: int) -> dict[str, tuple[str, ...]]:
    """Each table of a store of ``version`` and the columns lrkit reads from it."""
    if version == 1:
        return dict(_COLUMNS_V1)
    return {**_COLUMNS_V1, "trials": (*TRIALS_V1_COLUMNS, "error")}


def store_error(path: Path | str, problem: str) -> LrkitValueError:
    """``store PATH PROBLEM``; on the command line ``--store PATH PROBLEM``."""
    return LrkitValueError(f"store {path} {problem}", cli_message=f"--store {path} {problem}")


def damaged(path: Path, what: str) -> LrkitValueError:
    return store_error(path, f"is damaged: {what}")


def check_path(path: Path, *, writing: bool, must_exist: bool) -> None:
    """Refuse, before SQLite meets it, a path that can hold no store: a folder; a device, a
    FIFO or a socket (SQLite would answer "disk I/O error"); a path the system will not look
    at (a name too long); nothing there, where the store ``must_exist``."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if must_exist:
            raise store_error(path, "does not exist") from None
        return
    except OSError as exc:
        raise store_error(
            shortened(str(path)), f"cannot be opened ({exc.strerror or exc})"
        ) from None
    hint = " (give a file name)" if writing else ""
    if stat.S_ISDIR(mode):
        raise store_error(path, f"is a folder, not an lrkit results store{hint}")
    if not stat.S_ISREG(mode):
        raise store_error(path, f"is {_kind(mode)}, not an lrkit results store{hint}")


def _kind(mode: int) -> str:
    """What a path that is neither a file nor a folder is."""
    kinds = {
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
    }
    return next((kind for test, kind in kinds.items() if test(mode)), "not a file")


def not_a_store(path: Path, what: str, *, writing: bool) -> LrkitValueError:
    """A file that is not a store; a writer is told how to go on (a reader has nothing to
    choose: it was asked for this file)."""
    hint = " (give a new file name)" if writing else ""
    return store_error(path, f"is not an lrkit results store: it is {what}{hint}")


# SQLite's primary result codes (sqlite.org/rescode.html), for Pythons without sqlite3's names.
_SQLITE_ERROR = 1
_SQLITE_BUSY = 5
_SQLITE_CORRUPT = 11
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


def _code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of ``exc`` (Python 3.11+), else None."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    code = _code(exc)
    return code == _SQLITE_BUSY if code is not None else "database is locked" in str(exc)


def cannot_open(exc: sqlite3.Error) -> bool:
    """Whether SQLite could not open the file (or a side file it needs: -wal, -shm)."""
    code = _code(exc)
    return code == _SQLITE_CANTOPEN if code is not None else "unable to open" in str(exc)


def _is_not_a_database(exc: sqlite3.Error) -> bool:
    code = _code(exc)
    return code == _SQLITE_NOTADB if code is not None else "not a database" in str(exc)


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file's contents are wrong (a corrupt page, a missing table or
    column), as opposed to a failure of the moment (locked, disk full, no permission)."""
    code = _code(exc)
    message = str(exc)
    if code is None:
        return any(s in message for s in ("malformed", "not a database", "no such "))
    return code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or (
        code == _SQLITE_ERROR and message.startswith("no such ")
    )


@contextmanager
def refusing(path: Path, *, writing: bool) -> Iterator[None]:
    """SQLite's word that the file is not a database, is damaged (a corrupt page anywhere it
    reads) or cannot be opened, as the store's one-line refusal; a failure of the moment
    (locked, disk full) stays what it is."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if _is_not_a_database(exc):
            raise not_a_store(path, "not an SQLite database", writing=writing) from None
        if is_damage(exc):
            raise damaged(path, str(exc)) from None
        if cannot_open(exc):
            raise store_error(path, f"cannot be opened ({exc})") from None
        raise


def inspect(db: sqlite3.Connection, path: Path, *, writing: bool) -> int | None:
    """The schema version of the lrkit store open in ``db``; None when the database has no
    tables at all (a new file). Reads only: anything that is not a store lrkit can use is
    refused with what it is."""
    with refusing(path, writing=writing):
        tables = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables:
            return None
        if _magic(db, tables) != MAGIC:
            if {"sweeps", "trials", "points"} <= tables:  # lrkit's tables without lrkit's mark
                missing = "meta" not in tables
                raise damaged(
                    path,
                    "table meta is missing"
                    if missing
                    else "table meta does not mark it as an lrkit results store",
                )
            raise not_a_store(path, "an SQLite database without lrkit's tables", writing=writing)
        version = _version(db, path)
        _check_columns(db, path, tables, version)
    return version


def _magic(db: sqlite3.Connection, tables: set[str]) -> object:
    if "meta" not in tables:
        return None
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'magic'").fetchone()
    except sqlite3.OperationalError:  # a table named meta, not lrkit's
        return None
    return None if row is None else row[0]


def _version(db: sqlite3.Connection, path: Path) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise damaged(path, "its schema version is missing from table meta")
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise damaged(path, f"its schema version {quoted(row[0])} is not a number") from None
    if version > SCHEMA_VERSION:
        raise store_error(
            path,
            f"was written by a newer lrkit (store schema version {version}; this lrkit reads "
            f"versions up to {SCHEMA_VERSION}): upgrade lrkit to use it",
        )
    if version < 1:
        raise damaged(path, f"its schema version {version} is not one lrkit ever wrote")
    return version


def _check_columns(db: sqlite3.Connection, path: Path, tables: set[str], version: int) -> None:
    for table, expected in columns(version).items():
        if table not in tables:
            raise damaged(path, f"table {table} is missing")
        present = {
            name for (name,) in db.execute("SELECT name FROM pragma_table_info(?)", (table,))
        }
        missing = [c for c in expected if c not in present]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise damaged(path, f"table {table} has no column{plural} {', '.join(missing)}")


def create(db: sqlite3.Connection) -> None:
    """The current version's tables, in the caller's transaction."""
    for statement in SCHEMA:
        db.execute(statement)
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("magic", MAGIC), ("schema_version", str(SCHEMA_VERSION))],
    )


def _trials_v1_to_v2(db: sqlite3.Connection) -> None:
    """Admit status 'failed' and add the error column. SQLite cannot change a CHECK
    constraint in place, so the table is rebuilt (sqlite.org/lang_altertable.html, "other
    kinds of table schema changes"): a new table, every row copied with its id (so the points
    still name their trial), the old one dropped, the new one renamed."""
    names = ", ".join(TRIALS_V1_COLUMNS)
    db.execute(_TRIALS.format(name="trials_v2"))
    db.execute(f"INSERT INTO trials_v2 ({names}) SELECT {names} FROM trials")
    db.execute("DROP TABLE trials")
    db.execute("ALTER TABLE trials_v2 RENAME TO trials")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _trials_v1_to_v2}
"""Version -> the step that turns a store of it into one of the next version."""


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a store of ``version`` up to :data:`SCHEMA_VERSION`, in the caller's
    transaction (so a failure at any step leaves the store as it was). Foreign keys must be
    off: the rebuilt tables are dropped while other tables still refer to them."""
    if version == SCHEMA_VERSION:
        return
    for step in range(version, SCHEMA_VERSION):
        MIGRATIONS[step](db)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
