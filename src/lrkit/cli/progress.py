"""Long work as the person at the terminal sees it: progress bars (rich, on stderr; silence
when stderr is not a terminal), and what Ctrl-C leaves."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lrkit.errors import Interrupted


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


@contextmanager
def on_interrupt(kept: Callable[[], str]) -> Iterator[None]:
    """Ctrl-C inside becomes :class:`~lrkit.errors.Interrupted` saying ``kept()``: what the
    work had kept and how to resume (asked only then, when it is known). The CLI prints it
    on one line and exits 130."""
    try:
        yield
    except Interrupted:
        raise  # an inner block said it already
    except KeyboardInterrupt:
        raise Interrupted(kept()) from None
