"""The ``lrkit`` command: one verb a function, and the exit-code contract.

Exit 0 on success; 2 on bad input (one line on stderr naming the option and what is allowed,
no traceback); 1 on a failure while running (one line; set ``LRKIT_DEBUG=1`` for the
traceback); 130 on Ctrl-C (one line saying what was kept and how to resume).

Help texts are printed as written: typer's rich markup is off, so ``pip install
'lrkit[ray]'`` keeps its ``[ray]``.
"""

from __future__ import annotations

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
    try:
        # The context and the call that click's main() makes, without its handling of
        # Ctrl-C (typer's turns it into a silent exit 130): Ctrl-C comes here, with what the
        # verb says was kept.
        with _sigint_in_this_process_only(), command.make_context("lrkit", args) as ctx:
            result = command.invoke(ctx)
    except LrkitValueError as exc:
        _error(prog, _one_line(exc.cli_message()))
        return 2
    except KeyboardInterrupt as exc:
        said = _one_line(str(exc))
        print(f"{prog}: interrupted" + (f": {said}" if said else ""), file=sys.stderr)
        return 130
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


@contextmanager
def _sigint_in_this_process_only() -> Iterator[None]:
    """Ctrl-C on a terminal signals the whole process group: the vectorized sweep's forked
    workers too. Only this process turns it into KeyboardInterrupt; a worker forked from it
    inherits a handler that ignores it, and keeps working until this process stops it, so no
    worker prints a traceback of its own."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    pid = os.getpid()

    def on_sigint(signum: int, frame: object) -> None:
        if os.getpid() == pid:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
