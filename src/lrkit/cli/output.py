"""Writing results: aligned text tables, CSV and JSON files, and the checks that every output
path can be written, made before any work.

A verb checks its output paths (``--json``, ``--plot``, ``--report``, ``--plot-dir``,
``--out``...) together with :func:`check_outputs` first, so a path that cannot be written, or
two options naming one file (where the second would replace the first), exits 2 before hours
of training rather than after them. It writes them at the end through the :class:`Outputs`
that check returned, the usual ones with :func:`write_ending` (``--json``, ``--plot``,
``--report``, a folder of figures; :func:`write_result` for a range test's or an advice's):
each file whole or not at all (:mod:`lrkit.atomic`); a write that still fails (a full disk, a
folder removed meanwhile) exits 2 naming the option, the path and what was kept; Ctrl-C says
which outputs were written and which not.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lrkit.atomic import write_text
from lrkit.cli.progress import on_interrupt
from lrkit.errors import LrkitValueError, shortened

if TYPE_CHECKING:
    import torch

    from lrkit.advise.result import Advice
    from lrkit.batchsize.result import BatchAdvice
    from lrkit.rangetest.result import RangeTestResult
    from lrkit.report.page import Section

Cell = str | int | float
Result = TypeVar("Result")


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
    """Write ``obj`` as JSON, whole or not at all, creating the parent folder."""
    write_text(path, dumps(obj) + "\n")


def check_output_file(option: str, path: Path) -> Path:
    """``path`` as a file the verb can write at the end: not a folder, writable if it exists
    (a regular file in a folder where its replacement can be made), else in a folder that
    exists or can be created. Probes (a file, a folder) are removed at once; an existing file
    (a device too, not a FIFO) is opened for appending, which leaves it as it was."""
    with _refusing_unusable(option, path):
        if path.is_dir():
            raise LrkitValueError(f"{option} {path} is a folder; give a file name")
        if not path.exists():
            _probe_creation(option, path, folder=False)
            return path
        if path.is_fifo():
            return path  # opened only to write: a probe would wait for a reader, then end it
        try:
            with path.open("ab"):
                pass
        except OSError as exc:
            raise LrkitValueError(
                f"{option} {path} cannot be written ({_reason(exc)}); give a writable file"
            ) from None
        if path.is_file():  # replaced where it is, a link's target beside the target
            folder = Path(os.path.realpath(path)).parent
            _probe_folder(option, path, folder, "cannot replace it in its folder")
    return path


def check_output_folder(option: str, path: Path) -> Path:
    """``path`` as a folder the verb can write files into at the end: an existing folder
    where a file can be created, or a new one that can be made."""
    with _refusing_unusable(option, path):
        if path.exists() and not path.is_dir():
            raise LrkitValueError(f"{option} {path} is a file; give a folder (existing or new)")
        if not path.is_dir():
            _probe_creation(option, path, folder=True)
            return path
        _probe_folder(option, path, path, "cannot write in this folder")
    return path


def _probe_folder(option: str, path: Path, folder: Path, problem: str) -> None:
    """Whether a new file can be made in ``folder`` (an unnamed one, gone when closed)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise LrkitValueError(
            f"{option} {path}: {problem} ({_reason(exc)}); give a path in a folder that can "
            "be written"
        ) from None


@contextmanager
def _refusing_unusable(option: str, path: Path) -> Iterator[None]:
    """A path the system refuses even to look at (a name longer than the file system allows,
    a folder that cannot be searched) as the CLI's one-line error; a name too long is shown
    shortened."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise LrkitValueError(
                f"{option} {shortened(str(path))}: {_reason(exc)}; give a shorter name"
            ) from None
        raise LrkitValueError(
            f"{option} {path} cannot be used ({_reason(exc)}); give a path that can be written"
        ) from None


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


@dataclass(frozen=True)
class Output:
    """An output a verb writes at its end: a file, or a folder with the names of the files
    the verb may write into it."""

    option: str
    path: Path
    names: tuple[str, ...] | None = None
    """A folder's files (None: the output is a file)."""

    def shown(self) -> str:
        return str(self.path) if self.names is None else f"the files in {self.path}"


class Outputs:
    """A verb's outputs, as :func:`check_outputs` found them writable, in the order the verb
    writes them; what the work left safe whatever becomes of them (``kept``); and which have
    been written, so that Ctrl-C can say it."""

    def __init__(self, outputs: Sequence[Output], kept: str = "") -> None:
        self._outputs = list(outputs)
        self._kept = kept
        self._started: set[str] = set()
        self._written: set[str] = set()

    def path(self, option: str) -> Path | None:
        """The path given as ``option``, None where it was not given."""
        return next((o.path for o in self._outputs if o.option == option), None)

    def folder(self) -> Output | None:
        """The folder the verb writes files into, None where it has none (or none given)."""
        return next((o for o in self._outputs if o.names is not None), None)

    @contextmanager
    def writing(self, option: str, path: Path) -> Iterator[Path]:
        """Around the writing of output ``path`` (given as ``option``), as :func:`writing`,
        with what the work kept; the output counts as written when the block ends."""
        self._started.add(option)
        with writing(option, path, self._kept):
            yield path
        self._written.add(option)

    def interrupted(self) -> str:
        """What Ctrl-C leaves: the outputs written, those partly written (a folder's files, each
        whole), those not written, and what the work kept."""
        written = [o.shown() for o in self._outputs if o.option in self._written]
        partly = [
            o.shown()
            for o in self._outputs
            if o.names is not None and o.option in self._started - self._written
        ]
        not_written = [
            o.shown()
            for o in self._outputs
            if o.option not in self._written and (o.names is None or o.option not in self._started)
        ]
        said = [f"wrote {_listed(written)}"] if written else []
        said += [f"{_listed(partly)} partly written"] if partly else []
        if not said:
            said = ["nothing written"]
        elif not_written:
            said.append(f"{_listed(not_written)} not written")
        return "; ".join(said + ([self._kept] if self._kept else []))


def _listed(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def check_outputs(
    files: Sequence[tuple[str, Path | None]],
    folder: tuple[str, Path | None, Sequence[str]] | None = None,
    others: Sequence[tuple[str, Path | None]] = (),
    kept: str = "",
) -> Outputs:
    """The outputs given (``files``, option and path, None where not given; a ``folder``
    with the names of the files it may receive), each checked writable, and no two of them,
    nor an output and one of the verb's ``others`` (its store, the files it reads), the same
    file: the later write would replace the earlier, the input, or the store. In the order
    the verb writes them; ``kept``, what the work leaves safe, for messages."""
    outputs = [Output(option, path) for option, path in files if path is not None]
    if folder is not None and folder[1] is not None:
        outputs.append(Output(folder[0], folder[1], tuple(folder[2])))
    for output in outputs:
        if output.names is None:
            check_output_file(output.option, output.path)
        else:
            check_output_folder(output.option, output.path)
    _check_distinct(outputs, [(option, path) for option, path in others if path is not None])
    return Outputs(outputs, kept)


def _check_distinct(outputs: Sequence[Output], others: Sequence[tuple[str, Path]]) -> None:
    """Refuse two outputs, or an output and another of the verb's files, that are one file:
    the same path once resolved (``./a.json``, a symbolic link), or the same existing file
    (a hard link). A device or a FIFO is no file to lose: two outputs may be /dev/stdout."""
    seen: dict[tuple[object, ...], str] = {}
    for option, path in others:
        key = _identity(path)
        if key is not None:
            seen.setdefault(key, f"{option} {path}")
    for output in outputs:
        names = (None,) if output.names is None else output.names
        for name in names:
            path = output.path if name is None else output.path / name
            key = _identity(path)
            if key is None:
                continue
            here = f"{output.option} {output.path}" + ("" if name is None else f" (its {name})")
            if key in seen:
                raise LrkitValueError(
                    f"{seen[key]} and {here} are the same file; give each output a file of its own"
                )
            seen[key] = here


def _identity(path: Path) -> tuple[object, ...] | None:
    """What makes two paths one file: an existing file's device and inode, else its resolved
    path; None for what is not a regular file (a device, a FIFO)."""
    try:
        status = path.stat()
    except OSError:
        return ("path", os.path.realpath(path))
    return ("file", status.st_dev, status.st_ino) if stat.S_ISREG(status.st_mode) else None


def check_result_outputs(
    json_file: Path | None, plot: Path | None, report_file: Path | None = None
) -> Outputs:
    """A verb's ``--json``, ``--plot`` and ``--report``, checked as :func:`check_outputs`
    does, the figure's kind (its suffix) first."""
    if plot is not None:
        from lrkit.plots.figure import check_plot_path

        check_plot_path(plot)
    return check_outputs([("--json", json_file), ("--plot", plot), ("--report", report_file)])


def write_ending(
    outputs: Outputs,
    *,
    document: Callable[[], object] | None = None,
    figure: Callable[[Path], object] | None = None,
    page: Callable[[], tuple[Sequence[Section], str]] | None = None,
    figures: Callable[[Path], Sequence[Path]] | None = None,
) -> None:
    """The end of a verb: each output whose option was given and that the verb has, in this
    order: ``--json`` (``document()``), ``--plot`` (``figure(path)`` draws it), ``--report``
    (``page()``: its sections and lead line) and the verb's folder of figures
    (``figures(folder)`` writes them and returns their paths), each said on stderr (``wrote
    PATH``) but the JSON. A write that fails exits 2 as :meth:`Outputs.writing` says; Ctrl-C
    says which were written and which not."""
    with on_interrupt(outputs.interrupted):
        json_file = outputs.path("--json")
        if document is not None and json_file is not None:
            with outputs.writing("--json", json_file):
                write_json(json_file, document())
        plot = outputs.path("--plot")
        if figure is not None and plot is not None:
            with outputs.writing("--plot", plot):
                figure(plot)
            print(f"wrote {plot}", file=sys.stderr)
        report_file = outputs.path("--report")
        if page is not None and report_file is not None:
            from lrkit.report.build import write_report

            sections, lead = page()
            with outputs.writing("--report", report_file):
                write_report(report_file, sections, lead)
            print(f"wrote {report_file}", file=sys.stderr)
        folder = outputs.folder()
        if figures is not None and folder is not None:
            with outputs.writing(folder.option, folder.path):
                written = figures(folder.path)
            for path in written:
                print(f"wrote {path}", file=sys.stderr)


def write_result(outputs: Outputs, result: RangeTestResult | Advice | BatchAdvice) -> None:
    """The end of ``lrkit find`` and ``lrkit advise`` (:func:`write_ending`): the result as
    JSON, its figure, and a report page of its sections (``report.build``) under a lead
    naming its model and data."""
    write_ending(
        outputs,
        document=result.to_json,
        figure=lambda path: _draw(result, path),
        page=lambda: _page(result),
    )


def _draw(result: RangeTestResult | Advice | BatchAdvice, path: Path) -> None:
    from lrkit.advise.result import Advice
    from lrkit.rangetest.result import RangeTestResult

    if isinstance(result, RangeTestResult):
        from lrkit.plots.rangetest import plot_range_test

        plot_range_test(result, path)
    elif isinstance(result, Advice):
        from lrkit.plots.advise import plot_advice

        plot_advice(result, path)
    else:
        from lrkit.plots.batch_advice import plot_batch_advice

        plot_batch_advice(result, path)


def _page(result: RangeTestResult | Advice | BatchAdvice) -> tuple[list[Section], str]:
    from lrkit.advise.result import Advice
    from lrkit.rangetest.result import RangeTestResult
    from lrkit.report.build import build_report

    this_run = "this run"
    if isinstance(result, RangeTestResult):
        sections = build_report(range_tests=[(result, this_run)])
        return sections, f"Range test of {result.model} on {result.data}."
    if isinstance(result, Advice):
        sections = build_report(advice=[(result, this_run)])
    else:
        sections = build_report(batch_advice=[(result, this_run)])
    return sections, f"Advice for {result.model} on {result.data}."


def notes(verb: str, shown: bool = True) -> Callable[[str], None]:
    """What a verb says along the way (``lrkit VERB: message`` on stderr); nothing where not
    ``shown`` (the ranks of a data-parallel job but 0, which says the same)."""

    def note(message: str) -> None:
        if shown:
            print(f"lrkit {verb}: {message}", file=sys.stderr)

    return note


def on_each_rank(
    device: str,
    outputs: Outputs,
    measure: Callable[[torch.device, bool], Result],
    report: Callable[[Result], None],
) -> None:
    """``measure(device, is rank 0)``, then ``report`` of what it measured on rank 0 alone.
    Under ``torchrun`` this process is one rank of a data-parallel job (a DDP model,
    --batch-size examples per rank); ``measure`` makes the model and lets it go before
    returning: a DDP model must be gone before its process group is (see
    ``training.distributed.torchrun_group``). Ctrl-C says which outputs were written."""
    from lrkit.training import distributed
    from lrkit.training.device import resolve_device

    with distributed.torchrun_group(resolve_device(device)) as target:
        main = distributed.is_main()
        with on_interrupt(outputs.interrupted):
            result = measure(target, main)
            if main:
                report(result)
