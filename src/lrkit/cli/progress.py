"""Progress bars on a terminal (rich, on stderr); silence when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """A thin handle over rich's progress: bars by key (a sweep shows one over trials and
    one within the trial), or nothing at all when not drawing."""

    def __init__(self, bar: Any | None) -> None:
        self._bar = bar
        self._tasks: dict[str, Any] = {}

    def start(self, description: str, total: float, key: str = "main") -> None:
        """Begin (or restart) bar ``key``."""
        if self._bar is None:
            return
        if key in self._tasks:
            self._bar.reset(self._tasks[key], total=total, description=description, status="")
        else:
            self._tasks[key] = self._bar.add_task(description, total=total, status="")

    def update(self, completed: float, status: str = "", key: str = "main") -> None:
        if self._bar is not None and key in self._tasks:
            self._bar.update(self._tasks[key], completed=completed, status=status)

    def finish(self, key: str = "main") -> None:
        """Mark bar ``key`` complete where it stands (a range test may stop early)."""
        if self._bar is not None and key in self._tasks:
            task = next(t for t in self._bar.tasks if t.id == self._tasks[key])
            self._bar.update(self._tasks[key], total=task.completed)


@contextmanager
def progress(enabled: bool | None = None) -> Iterator[Progress]:
    """A :class:`Progress`; drawn only when ``enabled`` (default: stderr is a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield Progress(None)
        return
    from rich import progress as rich_progress
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    bar = rich_progress.Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
    )
    with bar:
        yield Progress(bar)
