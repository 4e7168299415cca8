"""Writing a file whole or not at all.

The new contents go to a temporary file in the target's folder, are flushed to the disk, and
are then renamed over the target in one step (``os.replace``, atomic on POSIX and Windows).
A write that fails midway (a full disk, a folder removed, Ctrl-C) removes the temporary and
leaves the target as it was, so a reader never meets half a JSON file, half a page or an empty
CSV where a good one stood. A replaced file keeps its permissions (and, where allowed, its
owner); a symbolic link stays one, its target replaced.

A target that exists and is not a regular file (``/dev/stdout``, ``/dev/full``, a FIFO) is
written in place: renaming over it would replace the device node itself.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO

TEMPORARY_SUFFIX = ".lrkit-tmp"
"""How a temporary file ends; only a process killed while writing leaves one behind."""


@contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write the new contents of ``path`` into, its folder created if new.
    When the block ends normally they replace ``path``; when it raises, ``path`` is left as
    it was and the temporary is removed. An :class:`OSError` about the temporary, or about
    no file (a full disk), names ``path``, the file the caller asked for."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target = Path(os.path.realpath(path))
    previous = _status(target)
    if previous is not None and not stat.S_ISREG(previous.st_mode):
        with target.open("wb") as device:
            yield device
        return
    temporary, handle = _temporary_beside(target)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if previous is not None:
            _keep_mode_and_owner(temporary, previous)
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(exc, OSError) and exc.errno and exc.filename in (None, str(temporary)):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


@contextmanager
def replacing_text(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """:func:`replacing` for UTF-8 text; ``newline`` as for :func:`open` (``""`` for CSV)."""
    with replacing(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline=newline)
        yield text
        # Flushed into the raw file, which replacing() syncs and closes. On an exception the
        # wrapper is dropped: it finds the raw file closed and writes nothing more.
        text.detach()


def write_text(path: Path, text: str) -> None:
    """``path`` holds ``text`` (UTF-8), whole, or is left as it was."""
    with replacing(path) as handle:
        handle.write(text.encode("utf-8"))


def _status(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _temporary_beside(target: Path) -> tuple[Path, BinaryIO]:
    """A new file next to ``target`` (same folder, so the rename stays on one file system),
    created with mode 0o666 less the umask, as ``open`` creates a new file."""
    while True:
        # A short stem keeps the name within the file system's limit for any target name.
        name = f".{target.name[:64]}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
        temporary = target.with_name(name)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return temporary, os.fdopen(fd, "wb")


def _keep_mode_and_owner(temporary: Path, previous: os.stat_result) -> None:
    """The replaced file's permission bits, and its owner where this process may set it
    (root replacing a user's file must not leave it owned by root)."""
    os.chmod(temporary, stat.S_IMODE(previous.st_mode))
    mine = temporary.stat()
    if (mine.st_uid, mine.st_gid) != (previous.st_uid, previous.st_gid):
        with contextlib.suppress(PermissionError):
            os.chown(temporary, previous.st_uid, previous.st_gid)
