"""MkDocs hook: the CLI reference, one page per command, generated at build time from the
CLI's own ``--help``.

Nothing here is retyped: the commands are read off the Typer app (``lrkit.cli.app.app``) and
each page holds what ``lrkit VERB --help`` prints, produced by the CLI's own entry point
(``lrkit.cli.app.main``) for a terminal ``WIDTH`` columns wide, as plain text (the app prints
help without rich markup, and ``NO_COLOR``/``TERM=dumb`` keep any colour out). The pages are
virtual files (``File.generated``): none is written to ``docs/``, so none can go stale.

The nav entry ``reference/cli/index.md`` in ``mkdocs.yml`` becomes a section holding the
overview and one page per command, in the order the app registers them.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
SECTION = "reference/cli"
INDEX = f"{SECTION}/index.md"
WIDTH = 80
"""The terminal's columns (click lays help out within 80 however wide the terminal is)."""
HELP_ENV = {"COLUMNS": str(WIDTH), "TERM": "dumb", "NO_COLOR": "1", "LINES": "50"}


def _import_app() -> Any:
    source = str(ROOT / "src")
    if source not in sys.path:  # a checkout without `pip install -e .`
        sys.path.insert(0, source)
    import lrkit.cli.app

    return lrkit.cli.app


@contextlib.contextmanager
def _help_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in HELP_ENV}
    os.environ.update(HELP_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cli_help(*verb: str) -> str:
    """What ``lrkit [VERB] --help`` prints, through the CLI's own entry point."""
    out = io.StringIO()
    with _help_environment(), contextlib.redirect_stdout(out):
        status = _import_app().main([*verb, "--help"])
    if status != 0:
        raise RuntimeError(f"lrkit {' '.join(verb)} --help exited {status}")
    return out.getvalue().rstrip() + "\n"


def commands() -> list[tuple[str, str]]:
    """Every command of the app, in the order it registers them, with its one-line summary."""
    import typer

    group = typer.main.get_command(_import_app().app)
    listed = []
    for name in group.list_commands(None):  # type: ignore[attr-defined]
        command = group.get_command(None, name)  # type: ignore[attr-defined]
        summary = (command.help or "").strip().split("\n\n")[0]
        listed.append((name, " ".join(summary.split())))
    return listed


def _page(verb: str, summary: str) -> str:
    return "\n".join(
        [
            f"# lrkit {verb}",
            "",
            summary,
            "",
            f"Generated when the site is built, from `lrkit {verb} --help` "
            f"(a terminal {WIDTH} columns wide).",
            "",
            "```text",
            cli_help(verb).rstrip(),
            "```",
            "",
        ]
    )


def _index(listed: list[tuple[str, str]]) -> str:
    rows = [f"| [`lrkit {verb}`]({verb}.md) | {summary} |" for verb, summary in listed]
    return "\n".join(
        [
            "# CLI reference",
            "",
            "Every command's help as the installed CLI prints it (`lrkit VERB --help`, or "
            "`-h`), generated when the site is built. Exit status: 0 on success, 2 on bad "
            "input (one line naming the option), 1 on a failure while running, 130 on Ctrl-C "
            "and 143 on SIGTERM ([Bad input](../../guides/bad-input.md)).",
            "",
            "| command | what it does |",
            "|---|---|",
            *rows,
            "",
            "```text",
            cli_help().rstrip(),
            "```",
            "",
        ]
    )


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Replace the nav entry of the reference's index by a section with a page per command."""
    section = [INDEX] + [{f"lrkit {verb}": f"{SECTION}/{verb}.md"} for verb, _ in commands()]

    def expand(items: list[Any]) -> list[Any]:
        expanded: list[Any] = []
        for item in items:
            if isinstance(item, dict):
                [(title, value)] = item.items()
                if value == INDEX:
                    item = {title: section}
                elif isinstance(value, list):
                    item = {title: expand(value)}
            expanded.append(item)
        return expanded

    if config.nav is not None:
        config.nav = expand(config.nav)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    listed = commands()
    files.append(File.generated(config, INDEX, content=_index(listed)))
    for verb, summary in listed:
        files.append(File.generated(config, f"{SECTION}/{verb}.md", content=_page(verb, summary)))
    return files
