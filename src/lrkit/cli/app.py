"""The ``lrkit`` command: one verb a function, and the exit-code contract.

Exit 0 on success; 2 on bad input (one line on stderr naming the option and what is allowed,
no traceback); 1 on a failure while running (one line; set ``LRKIT_DEBUG=1`` for the
traceback); 130 on Ctrl-C and 143 on SIGTERM (``kill``, ``timeout``), 128 + the signal's
number as a shell reports it, after the same clean-up (workers stopped, the store left with
finished trials only) and one line saying what was kept and how to resume; 141, silently,
when the reader of the output has gone (``lrkit runs | head``), as a Unix tool killed by
SIGPIPE.

Help texts are printed as written: typer's rich markup is off, so ``pip install
'lrkit[ray]'`` keeps its ``[ray]``.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import typer

from lrkit.cli import (
    advise_command,
    find_command,
    laws_command,
    noise_command,
    report_command,
    reproduce_command,
    runs_command,
    scale_command,
    schedule_command,
    sweep_command,
)
from lrkit.errors import LrkitValueError

app = typer.Typer(
    name="lrkit",
    help="Which learning rate and which batch size to train with, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from lrkit import __version__

        print(f"lrkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Which learning rate and which batch size to train with, and why."""


app.command("find", help=find_command.HELP)(find_command.find)
app.command("advise", help=advise_command.HELP)(advise_command.advise)
app.command("schedule", help=schedule_command.HELP)(schedule_command.schedule)
app.command("sweep", help=sweep_command.HELP)(sweep_command.sweep)
app.command("runs", help=runs_command.HELP)(runs_command.runs)
app.command("scale", help=scale_command.HELP)(scale_command.scale)
app.command("noise", help=noise_command.HELP)(noise_command.noise)
app.command("laws", help=laws_command.HELP)(laws_command.laws)
app.command("report", help=report_command.HELP)(report_command.report)
app.command("reproduce", help=reproduce_command.HELP)(reproduce_command.reproduce)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    verb = next((a for a in args if not a.startswith("-")), None)
    prog = f"lrkit {verb}" if verb else "lrkit"
    received: list[int] = []
    try:
        # The context and the call that click's main() makes, without its handling of
        # Ctrl-C (typer's turns it into a silent exit 130): Ctrl-C and SIGTERM come here,
        # with what the verb says was kept.
        with (
            _stop_signals_in_this_process_only(received),
            command.make_context("lrkit", args) as ctx,
        ):
            result = command.invoke(ctx)
            sys.stdout.flush()  # here, not at exit, where a closed pipe could not be handled
    except BrokenPipeError:
        _drop_stdout()
        return SIGPIPE_EXIT
    except LrkitValueError as exc:
        _error(prog, _one_line(exc.cli_message()))
        return 2
    except KeyboardInterrupt as exc:
        signum = received[0] if received else signal.SIGINT
        said = _one_line(str(exc))
        stopped = "terminated" if signum == signal.SIGTERM else "interrupted"
        print(f"{prog}: {stopped}" + (f": {said}" if said else ""), file=sys.stderr)
        _forget_unhandled_interrupt()
        return 128 + signum
    except typer.Exit as exc:  # --help, --version
        return exc.exit_code
    except Exception as exc:
        if _is_click_error(exc):
            # typer raises click's exceptions (its own vendored copy in typer >= 0.29), so
            # they are recognised by click's interface rather than by class.
            if type(exc).__name__ == "NoArgsIsHelpError":
                context = getattr(exc, "ctx", None)
                print(context.get_help() if context is not None else str(exc))
                return 0
            _error(prog, _one_line(exc.format_message()))  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        # A failure while running: exit 1, one line.
        if os.environ.get("LRKIT_DEBUG"):
            traceback.print_exc()
        _error(prog, f"failed: {type(exc).__name__}: {_one_line(str(exc))}")
        return 1
    return result if isinstance(result, int) else 0


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C, and the polite stop of ``kill`` and ``timeout``: both end a verb the same way."""


@contextmanager
def _stop_signals_in_this_process_only(received: list[int]) -> Iterator[None]:
    """SIGINT and SIGTERM become KeyboardInterrupt in this process (the first one's number
    appended to ``received``), so that the same clean-up runs for both.

    Ctrl-C on a terminal signals the whole process group: the vectorized sweep's forked
    workers too. A worker forked from this process inherits a handler that ignores SIGINT,
    and keeps working until this process stops it, so no worker prints a traceback of its
    own; SIGTERM, which is how this process stops a worker, ends it as it would without a
    handler."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    pid = os.getpid()

    def on_stop(signum: int, frame: object) -> None:
        if os.getpid() != pid:
            if signum == signal.SIGTERM:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        if not received:
            received.append(signum)
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, on_stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _forget_unhandled_interrupt() -> None:
    """Clear CPython's note that a KeyboardInterrupt went unhandled, which a stop caught here
    may have left. ``exec`` of a string notes it when one escapes the executed code, and at
    exit the interpreter then kills itself with SIGINT (status -2) whatever ``main``
    returned. A signal landing in code run by ``exec`` (``dataclasses`` builds ``__init__``
    so, while torch imports lazily in the middle of training) set it in about one stop in
    five. Each ``exec`` of a string starts by clearing the note, and this one raises
    nothing."""
    exec("None")


SIGPIPE_EXIT = 128 + 13
"""128 + SIGPIPE: how a shell reports a process killed for writing to a closed pipe."""


def _drop_stdout() -> None:
    """Point stdout at the null device: its reader has gone, and what is still buffered
    would otherwise fail again when the interpreter flushes it at exit (Python's
    documentation, "Note on SIGPIPE")."""
    try:
        stdout = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return  # no file descriptor behind it (an embedding program's stream)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stdout)
    os.close(devnull)


def _is_click_error(exc: Exception) -> bool:
    return hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _error(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
