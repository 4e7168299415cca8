"""Build the report from a sweep store, range-test results, noise-scale runs, advice and
fitted laws, with the machine and versions it was made on; as HTML (one self-contained file)
or Markdown."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lrkit.advise.result import Advice
from lrkit.atomic import write_text
from lrkit.batchsize.result import BatchAdvice
from lrkit.noise.tracking import NoiseRun
from lrkit.rangetest.result import RangeTestResult
from lrkit.report.batch_section import batch_advice_section
from lrkit.report.laws_section import LawEntry, RungTable, laws_sections
from lrkit.report.page import Section, Table, markdown, render
from lrkit.report.result_sections import advice_section, noise_section, range_test_section
from lrkit.report.sweep_section import sweep_report

FORMATS = ("html", "md")


def machine_section(wall_seconds: float | None = None) -> Section:
    import torch

    import lrkit

    rows = [
        ["lrkit", lrkit.__version__],
        ["Python", platform.python_version()],
        ["torch", torch.__version__],
        ["machine", f"{platform.machine()}, {platform.system()} {platform.release()}"],
        ["made", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")],
    ]
    if wall_seconds is not None:
        rows.append(["wall time", f"{wall_seconds:.1f} s"])
    return Section("Machine and versions", tables=[Table(["", ""], rows)])


@dataclass(frozen=True)
class StoreSweeps:
    """The sweeps of the store at ``path`` to report: every one, or the one ``name``d;
    ``val_size`` (validation examples) lets a single repeat be judged for noise
    (``sweep.analysis.best_lr_by_batch_size``)."""

    path: Path
    name: str | None = None
    val_size: int | None = None


def sweep_sections(sweeps: StoreSweeps) -> list[Section]:
    """Settings, curves and best learning rates of each of ``sweeps``; the store is only
    read."""
    from lrkit.sweep.store import Store

    name = sweeps.name
    sections: list[Section] = []
    with Store.open(sweeps.path, read_only=True) as store:
        if name is not None:
            store.check_sweep(name)
        for row in [r for r in store.sweeps() if name is None or r.name == name]:
            trials = store.trials(row.name)
            if trials:
                sections += sweep_report(row, trials, sweeps.val_size)
    return sections


def build_report(
    sweeps: StoreSweeps | None = None,
    range_tests: Sequence[tuple[RangeTestResult, str]] = (),
    noise_runs: Sequence[tuple[NoiseRun, str]] = (),
    wall_seconds: float | None = None,
    advice: Sequence[tuple[Advice, str]] = (),
    batch_advice: Sequence[tuple[BatchAdvice, str]] = (),
    laws: Sequence[LawEntry] = (),
    law_rungs: RungTable | None = None,
) -> list[Section]:
    """The sections of every result given, then the machine's; ``laws`` (each a title, a
    fit, its held-out check and a prediction, either None) with ``law_rungs``, the ladder's
    table (a header and rows), as ``report.laws_section`` shows them."""
    sections: list[Section] = []
    sections += [batch_advice_section(found, source) for found, source in batch_advice]
    sections += [advice_section(found.chosen.advice, source) for found, source in batch_advice]
    sections += [advice_section(found, source) for found, source in advice]
    sections += laws_sections(laws, law_rungs)
    if sweeps is not None:
        sections += sweep_sections(sweeps)
    sections += [range_test_section(result, source) for result, source in range_tests]
    sections += [noise_section(run, source) for run, source in noise_runs]
    sections.append(machine_section(wall_seconds))
    return sections


def write_report(path: Path, sections: Sequence[Section], lead: str, fmt: str = "html") -> Path:
    """``path`` holds the page (html) or its text and tables (md), whole, or is left as it
    was when the write fails."""
    title = "lrkit report"
    text = render(title, lead, sections) if fmt == "html" else markdown(title, lead, sections)
    write_text(path, text)
    return path
