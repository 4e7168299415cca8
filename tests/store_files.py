"""Results-store files for tests: lrkit's version-1 schema, and small tools to look into a
store or change it behind lrkit's back (to damage it, or to turn it back into version 1)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

# The schema of lrkit's first store (version 1), as that lrkit wrote it: kept here to make the
# stores that the migration must carry over.
V1_SCHEMA = """
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
INSERT INTO meta VALUES ('magic', 'lrkit results store'), ('schema_version', '1');
"""


V1_TRIALS = V1_SCHEMA[
    V1_SCHEMA.index("CREATE TABLE trials") : V1_SCHEMA.index(";\nCREATE TABLE points")
]
"""Version 1's trials table (CHECK without 'failed', no error column)."""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def schema_version(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
    finally:
        db.close()


def execute(path: Path, *statements: str) -> None:
    """Run SQL statements on the file directly and commit them."""
    db = sqlite3.connect(path)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def downgrade_to_v1(path: Path) -> None:
    """Turn a store of version 2 with no failed trial into the store lrkit 1 would have
    written: its trials table as version 1 had it, and schema version 1."""
    db = sqlite3.connect(path)
    try:
        db.execute(V1_TRIALS.replace("CREATE TABLE trials", "CREATE TABLE trials_v1"))
        names = ", ".join(row[1] for row in db.execute("PRAGMA table_info(trials_v1)"))
        db.execute(f"INSERT INTO trials_v1 ({names}) SELECT {names} FROM trials")
        db.execute("DROP TABLE trials")
        db.execute("ALTER TABLE trials_v1 RENAME TO trials")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        db.commit()
    finally:
        db.close()
