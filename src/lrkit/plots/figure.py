"""Shared figure plumbing: a headless backend and saving by file suffix, whole or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lrkit.atomic import replacing
from lrkit.errors import LrkitValueError, quoted

FORMATS = (".png", ".svg", ".pdf")


def check_plot_path(path: Path) -> Path:
    """The ``--plot`` path, checked before any work: PNG, SVG or PDF by suffix."""
    if path.suffix.lower() not in FORMATS:
        raise LrkitValueError(
            f"plot file must end in one of {', '.join(FORMATS)}, got {quoted(str(path))}",
            cli_message=f"--plot must end in one of {', '.join(FORMATS)}, got {quoted(str(path))}",
        )
    return path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> None:
    """Save ``fig`` to ``path`` (format from the suffix) and close it. A save that fails
    midway leaves ``path`` as it was (:func:`lrkit.atomic.replacing`)."""
    try:
        with replacing(path) as handle:
            fig.savefig(handle, format=path.suffix[1:].lower(), dpi=150, bbox_inches="tight")
    finally:
        pyplot().close(fig)
