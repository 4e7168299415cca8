"""Outputs and the stores that are only read, under faults: every output written whole or not
at all (the old file kept byte for byte, no temporary left), whatever the verb and the kind
of file; two options naming one file refused before any work; a name too long, a store that
is not a store (a device, a FIFO, a corrupt page, random bytes) refused in one line naming the
option (exit 2); a store on read-only media read; Ctrl-C while outputs are written says which
were written."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import shutil
import sqlite3
import stat
import subprocess
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from cli_run import run
from lrkit import atomic
from lrkit.cli.output import Output, Outputs, check_outputs
from lrkit.data.mnist import bundled_sample_dir
from lrkit.errors import LrkitValueError, shortened
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.store import Store
from lrkit.training.loop import CurvePoint, TrialOutcome
from store_files import digest

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(600, 10, generator=g)
        y = x[:, :3].argmax(dim=1)
        return {"train": (x[:469], y[:469]), "val": (x[469:560], y[469:560]),
                "test": (x[560:], y[560:])}

    def mlp(width):
        return nn.Sequential(nn.Linear(10, width), nn.Tanh(), nn.Linear(width, 3))
    """
)
USER = ["--model", "outmodels:make_model", "--data", "outmodels:make_data"]
SWEEP = ["sweep", "--lr", "0.1", "--batch-size", "16", "--store", "new.sqlite"]
LAWS = ["laws", "--model", "outmodels:mlp", "--widths", "8,16"]
STEP = ["schedule", "step", "--base-lr", "0.1", "--gamma", "0.5", "--step-size", "100"]
LONG = "a" * 300
SAME = "are the same file; give each output a file of its own"
TOO_LONG = "File name too long; give a shorter name"
DEFINITION = SweepDefinition(
    "mnist-mlp", "MNIST sample", "cross_entropy", 1.0, 0.5, 1 / 12, "sgd", 0.0, 0.0, None, None, 0
)
TEMPORARY = f"*{atomic.TEMPORARY_SUFFIX}"


def outcome(accuracy: float) -> TrialOutcome:
    points = (
        CurvePoint(0, 0.0, math.nan, 2.3, 0.1),
        CurvePoint(10, 0.5, 1.2, 1.1, accuracy / 2),
        CurvePoint(20, 1.0, 0.8, 0.9, accuracy),
    )
    return TrialOutcome("done", None, points, accuracy, 0.5)


def make_store(path: Path) -> None:
    """A store with one sweep of four trials (two batch sizes, two lrs), as a sweep leaves
    it: its write-ahead log checkpointed into the one file."""
    with Store.open(path) as store:
        sweep = store.sweep("default", DEFINITION)
        for batch_size, lr, accuracy in [
            (16, 0.1, 0.6),
            (16, 0.3, 0.7),
            (64, 0.1, 0.5),
            (64, 0.3, 0.8),
        ]:
            key = TrialKey(batch_size, lr, 0)
            store.mark_running(sweep, key, seed=0)
            store.save_trial(sweep, key, outcome(accuracy))


def garbage_over_page_2(path: Path) -> None:
    """A store whose second page (its first table's) is overwritten: a damaged disk."""
    with path.open("r+b") as handle:
        handle.seek(4096)
        handle.write(bytes(range(256)) * 16)


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "s.sqlite"
    make_store(path)
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_store: Path) -> Path:
    """A folder with the user module; a good store (s.sqlite); the same with a corrupt page
    (p2.sqlite); the same with a folder for its log (w.sqlite); random bytes (random.sqlite);
    a FIFO (pipe); an output file (a.json) with a hard link (h.json) and a symbolic link
    (l.json) to it; a folder (adir). The bundled MNIST sample as $LRKIT_DATA_DIR."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LRKIT_DATA_DIR", str(bundled_sample_dir()))
    (tmp_path / "outmodels.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    shutil.copyfile(good_store, tmp_path / "s.sqlite")
    shutil.copyfile(good_store, tmp_path / "p2.sqlite")
    garbage_over_page_2(tmp_path / "p2.sqlite")
    shutil.copyfile(good_store, tmp_path / "w.sqlite")
    (tmp_path / "w.sqlite-wal").mkdir()  # where SQLite must open its write-ahead log
    (tmp_path / "random.sqlite").write_bytes(bytes((i * 7919) % 251 for i in range(16384)))
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a.json").write_text('{"kept": true}\n')
    os.link(tmp_path / "a.json", tmp_path / "h.json")
    (tmp_path / "l.json").symlink_to("a.json")
    (tmp_path / "adir").mkdir()
    return tmp_path


def listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its digest (a FIFO, a link: their kind). SQLite's side
    files are left out: a reader may create them (the store's main file is never written)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts or path.name.endswith(("-wal", "-shm")):
            continue
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"link to {os.readlink(path)}"
        elif path.is_fifo():
            found[name] = "fifo"
        elif path.is_file():
            found[name] = digest(path)
        else:
            found[name] = "folder"
    return found


def the_line(err: str) -> str:
    """stderr as the one line it must be."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# Input at fault: one line naming the option, exit 2, before any work, nothing written.

REFUSED = [
    # two outputs, or an output and the store or an input, naming one file
    (["find", "--json", "r.out", "--report", "r.out"], f"--json r.out and --report r.out {SAME}"),
    (
        ["find", "--json", "r.png", "--plot", "adir/../r.png"],
        f"--json r.png and --plot adir/../r.png {SAME}",
    ),
    (
        ["find", "--json", "a.json", "--report", "h.json"],
        f"--json a.json and --report h.json {SAME}",
    ),
    (
        ["find", "--json", "l.json", "--report", "a.json"],
        f"--json l.json and --report a.json {SAME}",
    ),
    (
        ["advise", "--json", "a.out", "--plot", "a.png", "--report", "a.out"],
        f"--json a.out and --report a.out {SAME}",
    ),
    (["noise", "--json", "n.png", "--plot", "n.png"], f"--json n.png and --plot n.png {SAME}"),
    ([*LAWS, "--json", "laws.sqlite"], f"--store laws.sqlite and --json laws.sqlite {SAME}"),
    ([*LAWS, "--plot", "x.png", "--report", "x.png"], f"--plot x.png and --report x.png {SAME}"),
    ([*SWEEP, "--json", "new.sqlite"], f"--store new.sqlite and --json new.sqlite {SAME}"),
    (
        [*SWEEP, "--plot-dir", "figs", "--report", "figs/heatmap.png"],
        f"--report figs/heatmap.png and --plot-dir figs (its heatmap.png) {SAME}",
    ),
    (
        ["reproduce", "--json", "lrkit-reproduce/summary.md"],
        f"--json lrkit-reproduce/summary.md and --out lrkit-reproduce (its summary.md) {SAME}",
    ),
    (
        ["reproduce", "--report", "lrkit-reproduce/reproduce.sqlite"],
        "--report lrkit-reproduce/reproduce.sqlite and --out lrkit-reproduce (its "
        f"reproduce.sqlite) {SAME}",
    ),
    (
        ["reproduce", "--store", "r.sqlite", "--json", "r.sqlite"],
        f"--store r.sqlite and --json r.sqlite {SAME}",
    ),
    (
        ["runs", "--store", "s.sqlite", "--csv", "s.sqlite"],
        f"--store s.sqlite and --csv s.sqlite {SAME}",
    ),
    (["report", "--find", "f.json", "-o", "f.json"], f"--find f.json and --out f.json {SAME}"),
    (
        ["scale", "--compare", "--store", "s.sqlite", "--json", "s.sqlite"],
        f"--store s.sqlite and --json s.sqlite {SAME}",
    ),
    ([*STEP, "--json", "p.svg", "--plot", "p.svg"], f"--json p.svg and --plot p.svg {SAME}"),
    # names longer than the file system allows, shown shortened
    (["advise", "--json", f"{LONG}.json"], f"--json {shortened(LONG + '.json')}: {TOO_LONG}"),
    (["find", "--plot", f"{LONG}.png"], f"--plot {shortened(LONG + '.png')}: {TOO_LONG}"),
    ([*SWEEP, "--plot-dir", LONG], f"--plot-dir {shortened(LONG)}: {TOO_LONG}"),
    (
        ["report", "--store", "s.sqlite", "-o", f"{LONG}.html"],
        f"--out {shortened(LONG + '.html')}: {TOO_LONG}",
    ),
    (["runs", "--store", LONG], f"--store {shortened(LONG)} cannot be opened (File name too long)"),
    ([*SWEEP[:-1], LONG], f"--store {shortened(LONG)}: {TOO_LONG}"),
    # stores that are not stores
    (
        ["runs", "--store", "p2.sqlite"],
        "--store p2.sqlite is damaged: database disk image is malformed",
    ),
    (
        ["report", "--store", "p2.sqlite"],
        "--store p2.sqlite is damaged: database disk image is malformed",
    ),
    (
        ["scale", "--compare", "--store", "p2.sqlite"],
        "--store p2.sqlite is damaged: database disk image is malformed",
    ),
    ([*SWEEP[:-1], "p2.sqlite"], "--store p2.sqlite is damaged: database disk image is malformed"),
    (
        ["runs", "--store", "random.sqlite"],
        "--store random.sqlite is not an lrkit results store: it is not an SQLite database",
    ),
    (
        ["runs", "--store", "/dev/null"],
        "--store /dev/null is a character device, not an lrkit results store",
    ),
    (
        ["report", "--store", "/dev/null"],
        "--store /dev/null is a character device, not an lrkit results store",
    ),
    (
        [*SWEEP[:-1], "/dev/null"],
        "--store /dev/null is a character device, not an lrkit results store (give a file name)",
    ),
    (
        [*LAWS, "--store", "/dev/null"],
        "--store /dev/null is a character device, not an lrkit results store (give a file name)",
    ),
    (["runs", "--store", "pipe"], "--store pipe is a FIFO, not an lrkit results store"),
    (
        ["runs", "--store", "w.sqlite"],
        "--store w.sqlite cannot be opened (unable to open database file)",
    ),
    (
        [*SWEEP[:-1], "pipe"],
        "--store pipe is a FIFO, not an lrkit results store (give a file name)",
    ),
    # options that do nothing without another
    (
        ["runs", "--store", "s.sqlite", "--points"],
        "--points belongs to --csv (it exports every curve point)",
    ),
    (
        ["scale", "--lr", "0.1", "--batch-size", "16", "--to", "64", "--json", "x.json"],
        "--json belongs to --compare (it writes the comparison)",
    ),
    (
        ["reproduce", "--bs-schedule", "--epochs", "3", "--report", "r.html"],
        "--report belongs to the grids: --bs-schedule writes bs-schedule.md into --out",
    ),
]


@pytest.mark.parametrize(("args", "message"), REFUSED)
def test_input_at_fault_exits_2_in_one_line_naming_the_option(
    workdir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = listing(workdir)
    code, out, err = run(args, capsys)
    assert code == 2, err
    assert out == ""
    assert the_line(err) == f"lrkit {args[0]}: error: {message}"
    assert listing(workdir) == before


# Every output written whole or not at all, whatever the verb and the kind of file.


class FullDisk(io.FileIO):
    """A file on a disk that fills after ``room`` more bytes: the write that crosses it
    puts what fits, then fails with ENOSPC, as a real full disk does."""

    def __init__(self, fd: int, room: int) -> None:
        super().__init__(fd, "wb")
        self.room = room

    def write(self, data: Any) -> int:
        data = bytes(data)
        if len(data) <= self.room:
            self.room -= len(data)
            return int(super().write(data))
        super().write(data[: self.room])
        self.room = 0
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def disk_full_after(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make every file written through lrkit.atomic into the current folder (the disk of the
    outputs, not that of the system's temporary files) fill the disk after so many bytes."""

    def fill_after(room: int) -> None:
        beside = atomic._temporary_beside
        disk = Path.cwd().resolve()

        def on_a_small_disk(target: Path) -> tuple[Path, BinaryIO]:
            temporary, handle = beside(target)
            if not target.is_relative_to(disk):
                return temporary, handle
            fd = os.dup(handle.fileno())
            handle.close()
            return temporary, io.BufferedWriter(FullDisk(fd, room), buffer_size=256)

        monkeypatch.setattr(atomic, "_temporary_beside", on_a_small_disk)

    return fill_after


KEPT = "; the trials are kept in new.sqlite: run the same command again to write it"
LAWS_KEPT = "; finished runs are kept in laws.sqlite: run again to write it"
QUICK_FIND = [*USER, "--exp", "1e-4:1:30", "--rounds", "1"]
SMALL_SWEEP = [*SWEEP, "--epochs", "0.5", "--eval-every", "0.5", *USER]
SMALL_LAWS = [
    *["laws", "--model", "outmodels:mlp", "--widths", "4,8,16,32"],
    *["--data", "outmodels:make_data", "--epochs", "0.5", "--batch-size", "64"],
    *["--optimizer", "sgd", "--lr", "0.1", "--octaves", "1", "--per-octave", "1"],
]
# (verb and its options, the output option, the existing file it names, what the error adds)
OUTPUT_KINDS = [
    pytest.param([*STEP, "--json"], "--json", "out.json", "", id="schedule-json"),
    pytest.param([*STEP, "--plot"], "--plot", "out.png", "", id="schedule-png"),
    pytest.param([*STEP, "--plot"], "--plot", "out.svg", "", id="schedule-svg"),
    pytest.param([*STEP, "--plot"], "--plot", "out.pdf", "", id="schedule-pdf"),
    pytest.param(["runs", "--store", "s.sqlite", "--csv"], "--csv", "out.csv", "", id="runs-csv"),
    pytest.param(
        ["runs", "--store", "s.sqlite", "--points", "--csv"],
        "--csv",
        "out.csv",
        "",
        id="runs-points",
    ),
    pytest.param(
        ["report", "--store", "s.sqlite", "-o"], "--out", "out.html", "", id="report-html"
    ),
    pytest.param(
        ["report", "--store", "s.sqlite", "--format", "md", "-o"],
        "--out",
        "out.md",
        "",
        id="report-md",
    ),
    pytest.param(
        ["scale", "--compare", "--store", "s.sqlite", "--json"],
        "--json",
        "out.json",
        "",
        id="scale-json",
    ),
    pytest.param(
        ["find", *QUICK_FIND, "--no-plot", "--json"], "--json", "out.json", "", id="find-json"
    ),
    pytest.param(
        ["find", *QUICK_FIND, "--plot"],
        "--plot",
        "out.png",
        "",
        id="find-plot",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        ["find", *QUICK_FIND, "--no-plot", "--report"],
        "--report",
        "out.html",
        "",
        id="find-report",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        ["noise", *USER, "--epochs", "0.5", "--examples", "64", "--json"],
        "--json",
        "out.json",
        "",
        id="noise-json",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        ["noise", *USER, "--epochs", "0.5", "--examples", "64", "--plot"],
        "--plot",
        "out.png",
        "",
        id="noise-plot",
        marks=pytest.mark.slow,
    ),
    *[
        pytest.param(
            ["advise", *USER, "--batch-size", "16", "--epochs", "1", option],
            option,
            name,
            "",
            id=f"advise{option[1:]}",
            marks=pytest.mark.slow,
        )
        for option, name in (
            ("--json", "out.json"),
            ("--plot", "out.png"),
            ("--report", "out.html"),
        )
    ],
    *[
        pytest.param(
            [*SMALL_LAWS, option],
            option,
            name,
            LAWS_KEPT,
            id=f"laws{option[1:]}",
            marks=pytest.mark.slow,
        )
        for option, name in (
            ("--json", "out.json"),
            ("--plot", "out.png"),
            ("--report", "out.html"),
        )
    ],
    *[
        pytest.param(
            [*SMALL_SWEEP, option],
            option,
            name,
            KEPT,
            id=f"sweep{option[1:]}",
            marks=pytest.mark.slow,
        )
        for option, name in (("--json", "out.json"), ("--report", "out.html"))
    ],
]


@pytest.mark.parametrize(("args", "option", "name", "kept"), OUTPUT_KINDS)
def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(
    workdir: Path,
    disk_full_after: Callable[[int], None],
    args: list[str],
    option: str,
    name: str,
    kept: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = workdir / name
    old.write_bytes(b"the valid file of an earlier run\n")
    old.chmod(0o640)
    before = listing(workdir)
    disk_full_after(100)  # every output is longer
    code, _, err = run([*args, name], capsys)
    assert code == 2, err
    assert err.splitlines()[-1] == (
        f"lrkit {args[0]}: error: {option} {name}: could not write (No space left on device){kept}"
    )
    after = listing(workdir)
    assert {k: v for k, v in after.items() if k in before} == before  # the old file too
    assert not list(workdir.rglob(TEMPORARY))
    assert stat.S_IMODE(old.stat().st_mode) == 0o640


@pytest.mark.slow
def test_a_plot_folder_whose_disk_fills_keeps_its_old_figures(
    workdir: Path, disk_full_after: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    figs = workdir / "figs"
    figs.mkdir()
    (figs / "heatmap.png").write_bytes(b"an earlier heatmap")
    disk_full_after(1000)
    code, _, err = run([*SMALL_SWEEP, "--plot-dir", "figs"], capsys)
    assert code == 2, err
    assert err.splitlines()[-1] == (
        "lrkit sweep: error: --plot-dir figs: could not write figs/accuracy-vs-iteration.png "
        f"(No space left on device){KEPT}"
    )
    assert (figs / "heatmap.png").read_bytes() == b"an earlier heatmap"
    assert sorted(p.name for p in figs.iterdir()) == ["heatmap.png"]


@pytest.mark.slow
def test_reproduce_whose_summary_fails_keeps_the_old_one(
    workdir: Path, disk_full_after: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    out = workdir / "lrkit-reproduce"
    out.mkdir()
    (out / "summary.md").write_text("# an earlier summary\n")
    disk_full_after(100)
    code, _, err = run(["reproduce", "--epochs", "0.5"], capsys)
    assert code == 2, err
    assert err.splitlines()[-1].startswith(
        "lrkit reproduce: error: --out lrkit-reproduce: could not write lrkit-reproduce/"
    )
    assert (out / "summary.md").read_text() == "# an earlier summary\n"
    assert not list(out.glob(TEMPORARY))


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A small RAM file system mounted at ``folder``; the test is skipped where mounting is
    not permitted (not root, a container without the capability)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


@pytest.mark.parametrize(
    ("args", "option", "name"),
    [
        (["report", "--store", "s.sqlite", "-o"], "--out", "r.html"),
        ([*STEP, "--iters", "4000", "--plot"], "--plot", "p.svg"),
        ([*STEP, "--iters", "1000", "--every", "1", "--json"], "--json", "s.json"),
    ],
)
def test_a_real_full_disk_keeps_the_old_file(
    workdir: Path,
    args: list[str],
    option: str,
    name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with tmpfs(workdir / "disk", "64k") as disk:
        old = disk / name
        old.write_text("the valid file of an earlier run\n")
        (disk / "filler").write_bytes(b"x" * 40_000)  # a few pages left: less than the output
        code, _, err = run([*args, str(old)], capsys)
        assert code == 2, err
        assert err.splitlines()[-1] == (
            f"lrkit {args[0]}: error: {option} {old}: could not write (No space left on device)"
        )
        assert old.read_text() == "the valid file of an earlier run\n"
        assert sorted(p.name for p in disk.iterdir()) == ["filler", name]


def test_a_file_that_cannot_be_replaced_in_its_folder_is_refused_before_work(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A writable file in a folder where no file can be made (here a writable file mounted
    over one on read-only media): the new file could not be put beside it."""
    (workdir / "elsewhere.json").write_text("{}\n")
    with tmpfs(workdir / "ro", "64k") as media:
        (media / "r.json").write_text("{}\n")
        read_only(media)
        subprocess.run(
            ["mount", "--bind", str(workdir / "elsewhere.json"), str(media / "r.json")], check=True
        )
        try:
            code, out, err = run([*STEP, "--json", str(media / "r.json")], capsys)
        finally:
            subprocess.run(["umount", str(media / "r.json")], check=True)
    assert code == 2 and out == ""
    assert the_line(err) == (
        f"lrkit schedule: error: --json {media / 'r.json'}: cannot replace it in its folder "
        "(Read-only file system); give a path in a folder that can be written"
    )


# The helper itself: whole files, devices and FIFOs written in place, permissions kept.


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "out" / "r.json"
    atomic.write_text(path, "first\n")
    atomic.write_text(path, "second\n")
    assert path.read_text() == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_a_block_that_raises_leaves_the_old_file(
    tmp_path: Path, fault: type[BaseException]
) -> None:
    path = tmp_path / "r.json"
    path.write_text("old\n")
    with pytest.raises(fault), atomic.replacing(path) as handle:
        handle.write(b"half of the n")
        handle.flush()
        raise fault
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old\n")
    path.chmod(0o604)
    atomic.write_text(path, "new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o604


def test_a_new_file_has_the_permissions_open_gives(tmp_path: Path) -> None:
    umask = os.umask(0o027)
    try:
        atomic.write_text(tmp_path / "r.json", "new\n")
        (tmp_path / "plain").write_text("new\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o640
    assert (tmp_path / "r.json").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_a_symbolic_link_stays_a_link_to_the_replaced_file(tmp_path: Path) -> None:
    (tmp_path / "real.json").write_text("old\n")
    (tmp_path / "link.json").symlink_to("real.json")
    atomic.write_text(tmp_path / "link.json", "new\n")
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == "new\n"


def test_a_fifo_is_written_in_place_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    atomic.write_text(fifo, "through the pipe\n")
    reader.join(timeout=30)
    assert received == [b"through the pipe\n"]
    assert fifo.is_fifo()


def test_a_fifo_output_is_checked_without_opening_it(tmp_path: Path) -> None:
    """Opening a FIFO to probe it would wait for a reader, then hand it an end of file."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = threading.Event()
    checker = threading.Thread(target=lambda: (check_outputs([("--json", fifo)]), done.set()))
    checker.start()
    checker.join(timeout=30)
    if not done.is_set():
        with fifo.open("rb"):  # let the stuck probe go
            pass
    assert done.is_set()


def test_a_failed_rename_names_the_file_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(source: object, target: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(source), None, str(target))

    monkeypatch.setattr(atomic.os, "replace", refused)
    with pytest.raises(PermissionError) as caught:
        atomic.write_text(tmp_path / "r.json", "new\n")
    assert caught.value.filename == str(tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_two_outputs_on_one_device_are_allowed(tmp_path: Path) -> None:
    """Two outputs may both go to /dev/stdout: a stream loses nothing to a second writer."""
    outputs = check_outputs([("--json", Path("/dev/null")), ("--report", Path("/dev/null"))])
    assert outputs.path("--report") == Path("/dev/null")


# A store on read-only media is read.


def test_runs_and_report_read_a_store_on_read_only_media(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(workdir / "ro", "1m") as media:
        shutil.copyfile(workdir / "s.sqlite", media / "s.sqlite")
        read_only(media)
        code, out, err = run(["runs", "--store", str(media / "s.sqlite")], capsys)
        assert code == 0, err
        assert "done 4" in out
        code, _, err = run(["report", "--store", str(media / "s.sqlite"), "-o", "r.html"], capsys)
        assert code == 0, err
        assert "default" in (workdir / "r.html").read_text()
        assert sorted(p.name for p in media.iterdir()) == ["s.sqlite"]


def test_a_store_on_read_only_media_with_its_log_left_beside_it_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Copied while a sweep ran: trials in the log, no index to read it through, none to
    be made. Read as immutable, the trials would be missed; so it is refused."""
    with tmpfs(workdir / "ro", "1m") as media:
        store = media / "s.sqlite"
        shutil.copyfile(workdir / "s.sqlite", store)
        writer = sqlite3.connect(store)
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("UPDATE trials SET test_accuracy = 0.9")
        writer.commit()
        shutil.copyfile(store, media / "c.sqlite")
        shutil.copyfile(media / "s.sqlite-wal", media / "c.sqlite-wal")
        writer.close()
        read_only(media)
        code, out, err = run(["runs", "--store", str(media / "c.sqlite")], capsys)
        assert code == 2 and out == ""
        assert the_line(err) == (
            f"lrkit runs: error: --store {media / 'c.sqlite'} cannot be read here: its "
            "write-ahead log c.sqlite-wal is read through an index that cannot be created in "
            "this folder; copy the store and its -wal file to a folder that can be written"
        )


# Ctrl-C while outputs are written says which were written.


def interrupted_after(outputs: Outputs, done: list[str], started: str | None = None) -> str:
    """``outputs.interrupted()`` after writing ``done`` whole and starting ``started``."""
    for option in done:
        with outputs.writing(option, Path(option)):
            pass
    if started is not None:
        with contextlib.suppress(KeyboardInterrupt), outputs.writing(started, Path(started)):
            raise KeyboardInterrupt
    return outputs.interrupted()


THREE = [
    Output("--json", Path("a.json")),
    Output("--plot", Path("a.png")),
    Output("--report", Path("r.html")),
]
FOLDER = [Output("--json", Path("s.json")), Output("--plot-dir", Path("figs"), ("heatmap.png",))]


@pytest.mark.parametrize(
    ("outputs", "done", "started", "said"),
    [
        (Outputs(THREE), [], None, "nothing written"),
        (Outputs(THREE), [], "--json", "nothing written"),
        (Outputs(THREE), ["--json"], "--plot", "wrote a.json; a.png and r.html not written"),
        (Outputs(THREE), ["--json", "--plot"], None, "wrote a.json and a.png; r.html not written"),
        (Outputs(THREE), ["--json", "--plot", "--report"], None, "wrote a.json, a.png and r.html"),
        (Outputs(FOLDER, "KEPT"), [], None, "nothing written; KEPT"),
        (
            Outputs(FOLDER, "KEPT"),
            ["--json"],
            "--plot-dir",
            "wrote s.json; the files in figs partly written; KEPT",
        ),
        (Outputs(FOLDER), [], "--plot-dir", "the files in figs partly written; s.json not written"),
    ],
)
def test_ctrl_c_while_writing_says_what_was_written(
    outputs: Outputs, done: list[str], started: str | None, said: str
) -> None:
    assert interrupted_after(outputs, done, started) == said


def interrupt_in_the_middle_of_a_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while a figure is half written."""
    from matplotlib.figure import Figure

    def half_then_interrupted(self: Figure, handle: BinaryIO, **kwargs: object) -> None:
        handle.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_then_interrupted)


def test_ctrl_c_while_find_writes_says_what_was_written(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "r.png").write_bytes(b"an earlier figure")
    interrupt_in_the_middle_of_a_figure(monkeypatch)
    args = ["find", *QUICK_FIND, "--json", "r.json", "--plot", "r.png", "--report", "r.html"]
    code, _, err = run(args, capsys)
    assert code == 130
    assert err.splitlines()[-1] == (
        "lrkit find: interrupted: wrote r.json; r.png and r.html not written"
    )
    assert json.loads((workdir / "r.json").read_text())["rounds"]
    assert (workdir / "r.png").read_bytes() == b"an earlier figure"
    assert not (workdir / "r.html").exists() and not list(workdir.glob(TEMPORARY))


@pytest.mark.slow
def test_ctrl_c_while_advise_writes_says_what_was_written(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    interrupt_in_the_middle_of_a_figure(monkeypatch)
    args = ["advise", *USER, "--batch-size", "16", "--epochs", "1"]
    code, _, err = run(
        [*args, "--json", "advice.json", "--plot", "advice.png", "--report", "report.html"], capsys
    )
    assert code == 130
    assert err.splitlines()[-1] == (
        "lrkit advise: interrupted: wrote advice.json; advice.png and report.html not written"
    )
    assert (workdir / "advice.json").is_file() and not (workdir / "advice.png").exists()


@pytest.mark.slow
def test_ctrl_c_while_a_sweep_writes_its_figures_says_what_was_kept(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    interrupt_in_the_middle_of_a_figure(monkeypatch)
    code, _, err = run([*SMALL_SWEEP, "--json", "s.json", "--plot-dir", "figs"], capsys)
    assert code == 130
    assert err.splitlines()[-1] == (
        "lrkit sweep: interrupted: wrote s.json; the files in figs partly written; the trials "
        "are kept in new.sqlite: run the same command again to write it"
    )


def test_a_library_store_open_of_a_device_is_refused() -> None:
    with pytest.raises(LrkitValueError, match="store /dev/null is a character device"):
        Store.open(Path("/dev/null"), read_only=True)


def test_a_store_with_a_corrupt_page_is_refused_by_a_writer_untouched(workdir: Path) -> None:
    before = digest(workdir / "p2.sqlite")
    with pytest.raises(LrkitValueError, match="is damaged: database disk image is malformed"):
        Store.open(workdir / "p2.sqlite")
    assert digest(workdir / "p2.sqlite") == before
