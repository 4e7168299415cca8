"""Writing results: aligned text tables, CSV and JSON files, and the checks that every output
path can be written, made before any work.

A verb checks its output paths (``--json``, ``--plot``, ``--report``, ``--plot-dir``,
``--out``...) with :func:`check_output_file` or :func:`check_output_folder` first, so a path
that cannot be written exits 2 before hours of training rather than after them; it writes
them at the end inside :func:`writing`, so a write that still fails (a full disk, a folder
removed meanwhile) exits 2 too, naming the option, the path and what was kept.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lrkit.errors import LrkitValueError

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


def check_output_file(option: str, path: Path) -> Path:
    """``path`` as a file the verb can write at the end: not a folder, writable if it exists,
    else in a folder that exists or can be created. Probes (a file, a folder) are removed at
    once; an existing file is opened for appending, which leaves it as it was."""
    if path.is_dir():
        raise LrkitValueError(f"{option} {path} is a folder; give a file name")
    if path.exists():
        try:
            with path.open("ab"):
                pass
        except OSError as exc:
            raise LrkitValueError(
                f"{option} {path} cannot be written ({_reason(exc)}); give a writable file"
            ) from None
        return path
    _probe_creation(option, path, folder=False)
    return path


def check_output_folder(option: str, path: Path) -> Path:
    """``path`` as a folder the verb can write files into at the end: an existing folder
    where a file can be created, or a new one that can be made."""
    if path.exists() and not path.is_dir():
        raise LrkitValueError(f"{option} {path} is a file; give a folder (existing or new)")
    if path.is_dir():
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise LrkitValueError(
                f"{option} {path}: cannot write in this folder ({_reason(exc)}); give a folder "
                "that can be written"
            ) from None
        return path
    _probe_creation(option, path, folder=True)
    return path


def _probe_creation(option: str, path: Path, *, folder: bool) -> None:
    """Create and remove the first missing part of ``path``: the file itself when its folder
    exists, else the first folder to be made. Root ignores permissions, so only trying tells
    (under /proc, on a read-only disk)."""
    missing = path
    while not missing.parent.exists():
        missing = missing.parent
    if not missing.parent.is_dir():
        raise LrkitValueError(
            f"{option} {path}: {missing.parent} is a file, not a folder; give a path in a "
            "folder that can be written"
        )
    file = missing == path and not folder
    try:
        if file:
            path.open("xb").close()
        else:
            os.mkdir(missing)
    except FileExistsError:
        return  # made meanwhile: by another rank of a torchrun job, probing the same path
    except OSError as exc:
        raise LrkitValueError(
            f"{option} {path}: cannot create {missing} ({_reason(exc)}); give a path in a "
            "folder that can be written"
        ) from None
    with contextlib.suppress(OSError):  # another rank's probe may have removed it first
        if file:
            path.unlink()
        else:
            os.rmdir(missing)


@contextmanager
def writing(option: str, path: Path, kept: str = "") -> Iterator[Path]:
    """Around the writing of output ``path`` (given as ``option``): an :class:`OSError` becomes
    the CLI's one-line error (exit 2) naming both, and ``kept``, what the work left safe."""
    try:
        yield path
    except OSError as exc:
        failed = f" {exc.filename}" if exc.filename and Path(exc.filename) != path else ""
        raise LrkitValueError(
            f"{option} {path}: could not write{failed} ({_reason(exc)})"
            + (f"; {kept}" if kept else "")
        ) from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
