"""Build the report page from a sweep store (and, later sections, range-test and noise
results), with the machine and versions it was made on."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Sequence
from pathlib import Path

from lrkit.report.page import Section, Table, render
from lrkit.report.sweep_section import best_section, curves_section, settings_section


def machine_section(wall_seconds: float | None = None) -> Section:
    import torch

    import lrkit

    rows = [
        ["lrkit", lrkit.__version__],
        ["Python", platform.python_version()],
        ["torch", torch.__version__],
        ["machine", f"{platform.machine()}, {platform.system()} {platform.release()}"],
        ["made", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")],
    ]
    if wall_seconds is not None:
        rows.append(["wall time", f"{wall_seconds:.1f} s"])
    return Section("Machine and versions", tables=[Table(["", ""], rows)])


def sweep_report(store_path: Path, name: str | None = None, val_size: int | None = None) -> str:
    """The page for the sweeps of a store (all of them, or ``name``)."""
    from lrkit.sweep.store import Store

    sections: list[Section] = []
    with Store.open(store_path, create=False) as store:
        rows = [r for r in store.sweeps() if name is None or r.name == name]
        for row in rows:
            trials = store.trials(row.name)
            if not trials:
                continue
            sections += [
                settings_section(row, trials),
                curves_section(trials),
                best_section(trials, val_size),
            ]
    sections.append(machine_section())
    names = ", ".join(r.name for r in rows) or "none"
    return render(
        "lrkit report",
        f"Sweeps in {store_path.name}: {names}. Every figure says below it what to read from it.",
        sections,
    )


def write_report(path: Path, page: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


__all__: Sequence[str] = ("machine_section", "sweep_report", "write_report")
