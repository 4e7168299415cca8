"""``lrkit runs``: list a store's sweeps and trials; export them to CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer

from lrkit.cli.output import text_table

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

    with Store.open(store, create=False) as opened:
        sweeps = opened.sweeps()
        trials = opened.trials(name, with_points=points)
    rows: list[list[str | int | float]] = [
        [
            s.name,
            s.created_at,
            s.definition["model"],
            f"{s.definition['epochs']:g}",
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
    if csv_file is not None:
        csv_file.parent.mkdir(parents=True, exist_ok=True)
        with csv_file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if points:
                writer.writerow(
                    [
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
                )
                for t in trials:
                    for p in t.points:
                        writer.writerow(
                            [
                                t.sweep,
                                t.batch_size,
                                t.lr,
                                t.repeat,
                                p.iteration,
                                p.epoch,
                                p.train_loss,
                                p.val_loss,
                                p.val_accuracy,
                            ]
                        )
            else:
                writer.writerow(TRIAL_COLUMNS)
                for t in trials:
                    writer.writerow([getattr(t, column) for column in TRIAL_COLUMNS])
