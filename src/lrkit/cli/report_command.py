"""``lrkit report``: one self-contained HTML page (or Markdown) from a sweep store, range
tests and noise-scale runs. Its inputs are only read: the store is never written, and a file
that is not what its option says is refused naming the option, the file and what is wrong."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lrkit import validation as check
from lrkit.cli.output import check_outputs
from lrkit.errors import LrkitValueError
from lrkit.sweep.store_schema import check_path as check_store_path

FORMATS = ("html", "md")

HELP = "\n\n".join(
    [
        "Write one page to open, keep and share: a sweep's settings, curves, heatmap, best "
        "learning rates with their noise, the scaling fit and the rule comparison; range tests "
        "with their suggestions; the noise scale over training; the machine and versions.",
        "The HTML file is self-contained (figures embedded, styles inline); --format md writes "
        "the text and tables as Markdown for notes.",
        "Example: lrkit report --store runs.sqlite --find find.json --noise noise.json "
        "-o report.html",
    ]
)

ReportOption = Annotated[
    Path | None, typer.Option("--report", help="Also write an HTML report to this file.")
]


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="The report file.")] = Path(
        "lrkit-report.html"
    ),
    store: Annotated[Path | None, typer.Option(help="A sweep store.")] = None,
    name: Annotated[
        str | None, typer.Option(help="The sweep in --store (default: every sweep in it).")
    ] = None,
    find: Annotated[
        list[Path] | None, typer.Option("--find", help="lrkit find --json output (repeatable).")
    ] = None,
    noise: Annotated[
        list[Path] | None, typer.Option("--noise", help="lrkit noise --json output (repeatable).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="html or md.")] = "html",
) -> None:
    check.choice("format", fmt, FORMATS)
    if store is None and not find and not noise:
        raise LrkitValueError("nothing to report: give --store, --find or --noise")
    inputs = [("--store", store)] + [
        (option, p) for option, given in (("--find", find), ("--noise", noise)) for p in given or []
    ]
    outputs = check_outputs([("--out", out)], others=inputs)
    from lrkit.report.build import StoreSweeps, build_report, write_report
    from lrkit.report.results import load_noise_run, load_range_test

    range_tests = [(load_range_test(p), p.name) for p in find or []]
    runs = [(load_noise_run(p), p.name) for p in noise or []]
    if store is not None:
        check_store_path(store, writing=False, must_exist=True)
    sweeps = StoreSweeps(store, name) if store is not None else None
    sections = build_report(sweeps, range_tests, runs)
    sources = [
        s
        for s in ([store.name] if store else []) + [p.name for p in [*(find or []), *(noise or [])]]
    ]
    with outputs.writing("--out", out):
        path = write_report(out, sections, f"From {', '.join(sources)}.", fmt)
    print(f"wrote {path}", file=sys.stderr)
