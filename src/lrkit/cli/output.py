"""Writing results: aligned text tables, CSV and JSON files."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Cell = str | int | float


def format_number(value: float) -> str:
    """A learning rate as people write it: ``0.0531441``, not ``0.05314410000000001``."""
    return f"{value:.10g}"


def _cell(value: Cell) -> str:
    return format_number(value) if isinstance(value, float) else str(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """Right-aligned columns under a header, as the textbook prints its tables."""
    cells = [list(header)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def csv_table(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[repr(v) if isinstance(v, float) else v for v in row] for row in rows])
    return buffer.getvalue().rstrip("\n")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=True)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON, creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(obj) + "\n", encoding="utf-8")
