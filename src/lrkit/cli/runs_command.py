"""``lrkit runs``: list a store's sweeps and trials (failed ones with what they raised); export
them to CSV. The store is only read, never written."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lrkit.atomic import replacing_text
from lrkit.cli.output import check_outputs, text_table
from lrkit.errors import LrkitValueError

if TYPE_CHECKING:
    from lrkit.sweep.store import StoredTrial

HELP = (
    "List the sweeps and trials in a results store; --csv exports the trials "
    "(or, with --points, every curve point)."
)

TRIAL_COLUMNS = [
    "sweep",
    "batch_size",
    "lr",
    "repeat",
    "status",
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "seconds",
    "error",
]
POINT_COLUMNS = [
    "sweep",
    "batch_size",
    "lr",
    "repeat",
    "iteration",
    "epoch",
    "train_loss",
    "val_loss",
    "val_accuracy",
]


def runs(
    store: Annotated[Path, typer.Option(help="The SQLite results store.")],
    name: Annotated[str | None, typer.Option(help="Only this sweep.")] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write the trials (or points) as CSV.")
    ] = None,
    points: Annotated[
        bool, typer.Option("--points", help="With --csv: one row per curve point.")
    ] = False,
) -> None:
    from lrkit.sweep.store import Store, summary_rows

    if points and csv_file is None:
        raise LrkitValueError("--points belongs to --csv (it exports every curve point)")
    outputs = check_outputs([("--csv", csv_file)], others=[("--store", store)])
    with Store.open(store, read_only=True) as opened:
        if name is not None:
            opened.check_sweep(name)
        sweeps = opened.sweeps()
        trials = opened.trials(name, with_points=points)
    rows: list[list[str | int | float]] = [
        [
            s.name,
            s.created_at,
            _setting(s.definition, "model"),
            _setting(s.definition, "epochs"),
            ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items())) or "no trials",
        ]
        for s in sweeps
        if name is None or s.name == name
    ]
    print(text_table(["sweep", "created", "model", "epochs", "trials"], rows))
    print()
    print(
        text_table(
            [
                "sweep",
                "batch",
                "lr",
                "repeat",
                "status",
                "final acc",
                "best acc",
                "test acc",
                "seconds",
            ],
            summary_rows(trials),
        )
    )
    failures = _failures(trials)
    if failures:
        print()
        print("failed (training raised; running the sweep again retries them):")
        print("\n".join(failures))
    if csv_file is not None:
        with outputs.writing("--csv", csv_file):
            _write_csv(csv_file, trials, points)


def _write_csv(path: Path, trials: list[StoredTrial], points: bool) -> None:
    """The trials (or every curve point) as CSV, one row each; whole, or ``path`` is left as
    it was."""
    with replacing_text(path, newline="") as handle:
        writer = csv.writer(handle)
        if points:
            writer.writerow(POINT_COLUMNS)
            for t in trials:
                for p in t.points:
                    where = [t.sweep, t.batch_size, t.lr, t.repeat, p.iteration, p.epoch]
                    writer.writerow([*where, p.train_loss, p.val_loss, p.val_accuracy])
        else:
            writer.writerow(TRIAL_COLUMNS)
            for t in trials:
                writer.writerow([getattr(t, column) for column in TRIAL_COLUMNS])


def _setting(definition: dict[str, Any], key: str) -> str:
    """A sweep setting as listed: numbers as people write them, '-' where it is missing."""
    value = definition.get(key)
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def _failures(trials: list[StoredTrial]) -> list[str]:
    """A line per failed trial: which one, and what it raised (on one line)."""
    return [
        f"  {t.sweep}: batch {t.batch_size}, lr {t.lr:g}, repeat {t.repeat}: "
        + " ".join((t.error or "no error recorded").split())
        for t in trials
        if t.status == "failed"
    ]
