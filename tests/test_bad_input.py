"""Bad input across the verbs, and the faults a run can meet: every bad option exits 2 with
one line naming it and what is allowed, before any work and leaving nothing behind; Ctrl-C
exits 130 with one line saying what was kept; an output that fails at the end exits 2
naming it; a loss that is never finite is called what it is."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from cli_run import run
from lrkit.cli.app import app
from lrkit.data.mnist import bundled_sample_dir
from lrkit.errors import LrkitValueError
from lrkit.noise.tracking import NoiseSettings
from lrkit.rangetest.core import RangeTest
from lrkit.rangetest.programs import (
    LrProgram,
    exponential_range,
    linear_range,
    parse_segments,
    segment,
    segments_program,
)
from lrkit.sweep.definition import SweepDefinition, pairs_grid, product_grid

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

    def nan_loss(output, target):
        return nn.functional.cross_entropy(output, target) * float("nan")

    calls = {"n": 0}

    def nan_later_at_64(output, target):
        # Finite everywhere except training steps at batch size 64 after the first 12 of
        # them: the first trial at 64 diverges after some checks, the next at its first.
        loss = nn.functional.cross_entropy(output, target)
        if torch.is_grad_enabled() and output.shape[0] == 64:
            calls["n"] += 1
            if calls["n"] > 12:
                return loss * float("nan")
        return loss
    """
)
USER = ["--model", "badmodels:make_model", "--data", "badmodels:make_data"]
SWEEP = ["sweep", "--lr", "0.1", "--batch-size", "16", "--store", "new.sqlite"]
DEV_FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full (Linux)")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the user module, a regular file (file.txt) and a folder (adir, and
    dir.png for --plot) to get in the way of outputs; the bundled MNIST sample as
    $LRKIT_DATA_DIR, so that no note about it joins the one line of an error."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LRKIT_DATA_DIR", str(bundled_sample_dir()))
    (tmp_path / "badmodels.py").write_text(USER_MODULE)
    (tmp_path / "file.txt").write_text("in the way")
    (tmp_path / "adir").mkdir()
    (tmp_path / "dir.png").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def the_line(err: str) -> str:
    """stderr as the one line it must be."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


BIG_SEED = "99999999999999999999"
SEED = "--seed must be an integer in [0, 4294967295], got "
MOMENTUM = "--momentum must be a number in [0, 1), got "
DIVERGE = "--diverge-factor must be a finite number > 1, got "
STEPS = "num_steps must be an integer in [2, 1000000], got "
PROGRAM = "a program runs at most 1000000"
CHECKS = "(at most the epochs, and at most 100000 checks a run)"
WORKERS = "--workers must be an integer in [1, "

BAD_INPUT = [
    # output paths, checked before any work
    (["find", "--json", "file.txt/out.json"], 2, "--json file.txt/out.json: file.txt is a file"),
    (["find", "--json", "/proc/lrkit/out.json"], 2, "--json /proc/lrkit/out.json: cannot create"),
    (["find", "--json", "adir"], 2, "--json adir is a folder; give a file name"),
    (["find", "--json", "/proc/version"], 2, "--json /proc/version cannot be written ("),
    (["find", "--report", "file.txt/r.html"], 2, "--report file.txt/r.html: file.txt is a file"),
    (["find", "--plot", "file.txt/f.png"], 2, "--plot file.txt/f.png: file.txt is a file"),
    (["find", "--plot", "/proc/lrkit.png"], 2, "--plot /proc/lrkit.png: cannot create"),
    (["find", "--plot", "dir.png"], 2, "--plot dir.png is a folder"),
    (["noise", "--json", "file.txt/n.json"], 2, "--json file.txt/n.json: file.txt is a file"),
    (["noise", "--plot", "dir.png"], 2, "--plot dir.png is a folder"),
    ([*SWEEP, "--plot-dir", "file.txt"], 2, "--plot-dir file.txt is a file; give a folder"),
    ([*SWEEP, "--plot-dir", "file.txt/figs"], 2, "--plot-dir file.txt/figs: file.txt is a file"),
    ([*SWEEP, "--plot-dir", "/proc/lrkit"], 2, "--plot-dir /proc/lrkit: cannot create"),
    ([*SWEEP, "--json", "/proc/s.json"], 2, "--json /proc/s.json: cannot create /proc/s.json"),
    ([*SWEEP, "--report", "adir"], 2, "--report adir is a folder"),
    ([*SWEEP[:-1], "file.txt/s.sqlite"], 2, "--store file.txt/s.sqlite: file.txt is a file"),
    ([*SWEEP[:-1], "adir"], 2, "--store adir is a folder"),
    (["reproduce", "--out", "file.txt"], 2, "--out file.txt is a file; give a folder"),
    (["reproduce", "--out", "/proc/lrkit"], 2, "--out /proc/lrkit: cannot create /proc/lrkit"),
    (["reproduce", "--json", "file.txt/r.json"], 2, "--json file.txt/r.json: file.txt is a file"),
    (["reproduce", "--store", "adir"], 2, "--store adir is a folder"),
    # momentum in [0, 1), whichever the optimizer
    ([*SWEEP, "--momentum", "nan"], 2, MOMENTUM + "nan"),
    ([*SWEEP, "--momentum", "-1"], 2, MOMENTUM + "-1.0"),
    ([*SWEEP, "--momentum", "2"], 2, MOMENTUM + "2.0"),
    (["find", "--momentum", "1"], 2, MOMENTUM + "1.0"),
    (["noise", "--momentum", "-0.5"], 2, MOMENTUM + "-0.5"),
    # seeds: 32-bit unsigned integers, in every verb that takes one
    (["find", "--seed", BIG_SEED], 2, SEED + BIG_SEED),
    ([*SWEEP, "--seed", BIG_SEED], 2, SEED + BIG_SEED),
    (["noise", "--seed", BIG_SEED], 2, SEED + BIG_SEED),
    (["reproduce", "--seed", BIG_SEED], 2, SEED + BIG_SEED),
    (["find", "--seed", "-1"], 2, SEED + "-1"),
    # one requirement, stated once
    (["find", "--diverge-factor", "0.5"], 2, DIVERGE + "0.5"),
    (["find", "--diverge-factor", "nan"], 2, DIVERGE + "nan"),
    (["find", "--smoothing", "1"], 2, "--smoothing must be a number in [0, 1), got 1.0"),
    (["find", "--exp", "1e-6:1:0"], 2, "--exp 1e-6:1:0: " + STEPS + "0"),
    (["find", "--exp", "1e-6:1:1"], 2, "--exp 1e-6:1:1: " + STEPS + "1"),
    ([*SWEEP, "--workers", "0"], 2, WORKERS),
    ([*SWEEP, "--lr", "x"], 2, "--lr must be a finite number > 0, got 'x'"),
    (["noise", "--batch-size", "1"], 2, "--batch-size must be an integer >= 2 (the noise scale"),
    (["noise", "--batch-size", "0"], 2, "--batch-size must be an integer >= 2 (the noise scale"),
    # reproduce names what it has (no --eval-every)
    (
        ["reproduce", "--epochs", "0.25"],
        2,
        "--epochs must be a number in [0.5, 50000] (reproduce checks every 0.5 epochs",
    ),
    (["reproduce", "--epochs", "0"], 2, "--epochs must be a number in [0.5, 50000]"),
    # every size bounded before anything is allocated
    (
        ["find", "--segments", "0.1:0.5:1e-9@5"],
        2,
        "bad segment '0.1:0.5:1e-9@5': 400000001 lrs held 5 iterations each; " + PROGRAM,
    ),
    (["find", "--segments", "0.1:0.5:1e-999999999@5"], 2, "more lrs than can be counted"),
    (
        ["find", "--segments", "0.1:0.9:0.1@100000,1:9:1@100000"],
        2,
        "the segments together runs 1800000 iterations; " + PROGRAM,
    ),
    (["find", "--exp", "1e-6:1:1000000000"], 2, "--exp 1e-6:1:1000000000: " + STEPS),
    (["find", "--linear", "1e-6:1:1000000000"], 2, "--linear 1e-6:1:1000000000: " + STEPS),
    (
        ["find", "--exp", "1e-6:1:1000", "--hold", "10000"],
        2,
        "num_steps x hold = 1000 x 10000 runs 10000000 iterations; " + PROGRAM,
    ),
    (
        ["find", "--exp", "1e-6:1:100", "--hold", "1000000000"],
        2,
        "--hold must be an integer in [1, 1000000]",
    ),
    (["find", "--points", "1000000000"], 2, "--points must be an integer in [1, 1000000]"),
    (
        ["find", "--points", "100000"],
        2,
        "--points 100000: with 2 rounds the last could run 1000650 iterations",
    ),
    (["find", "--rounds", "100"], 2, "--rounds must be an integer in [1, 10]"),
    (
        ["find", "--repeats", "1000000"],
        2,
        "--repeats must be an integer in [1, 64] (the vectorized engine's largest stack)",
    ),
    (
        ["noise", *USER, "--examples", "100000000"],
        2,
        "--examples must be an integer in [1, 469] (the training examples)",
    ),
    (
        ["noise", "--epochs", "1e9", "--measure-every", "1e-6"],
        2,
        "--measure-every must be a number in [10000, 1e+09] " + CHECKS,
    ),
    (
        [*SWEEP, "--repeats", "100000000"],
        2,
        "the grid has 100000000 trials (1 --lr x 1 --batch-size x 100000000 --repeats); "
        "a sweep runs at most 100000",
    ),
    (
        [*SWEEP, "--epochs", "1e9", "--eval-every", "1e-6"],
        2,
        "--eval-every must be a number in [10000, 1e+09] " + CHECKS,
    ),
    ([*SWEEP, "--workers", "100000"], 2, WORKERS),
    (["reproduce", "--workers", "100000"], 2, WORKERS),
    (["reproduce", "--epochs", "1e9"], 2, "--epochs must be a number in [0.5, 50000]"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD_INPUT)
def test_bad_input_exits_with_one_line_before_any_work(
    workdir: Path, args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = listing(workdir)
    started = time.perf_counter()
    status, out, err = run(args, capsys)
    assert status == code, err
    assert out == ""
    line = the_line(err)
    assert line.startswith(f"lrkit {args[0]}: error: ")
    assert message in line
    if args[0] == "reproduce":
        assert "--eval-every" not in line  # an option it does not have
    assert listing(workdir) == before  # nothing created, nothing half-written
    assert time.perf_counter() - started < 60  # refused, not run


@pytest.mark.parametrize(
    ("option", "values", "requirement"),
    [
        ("--diverge-factor", ["0.5", "1", "nan", "-3", "inf"], "a finite number > 1"),
        ("--smoothing", ["-0.1", "1", "nan"], "a number in [0, 1)"),
        ("--momentum", ["-1", "1", "nan"], "a number in [0, 1)"),
        ("--repeats", ["0", "65"], "an integer in [1, 64] (the vectorized engine's largest stack)"),
        ("--val-fraction", ["0", "1", "x", "1/0"], "a fraction in (0, 1) like 1/12 or 0.1"),
    ],
)
def test_a_requirement_is_stated_one_way_whatever_the_bad_value(
    workdir: Path,
    option: str,
    values: list[str],
    requirement: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for value in values:
        code, _, err = run(["find", option, value], capsys)
        assert code == 2
        assert f"{option} must be {requirement}, got " in the_line(err), value


def verbs() -> list[str]:
    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def flat(text: str) -> str:
    """Text as words: the help's line breaks (click's wrapping also breaks after a hyphen,
    ``bs-`` / ``schedule``) are not part of what was written."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


@pytest.mark.parametrize("verb", verbs())
def test_help_prints_every_help_text_as_written(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rich markup would take ``[ray]`` for a style and drop it; every text survives."""
    code, out, err = run([verb, "--help"], capsys)
    assert code == 0, err
    command = typer.main.get_command(app).commands[verb]  # type: ignore[attr-defined]
    texts = [p.help for p in command.params if getattr(p, "help", None)]
    texts += (command.help or "").split("\n\n")
    assert texts
    for text in texts:
        assert flat(text) in flat(out), text


def test_help_keeps_the_extra_in_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["sweep", "--help"], capsys)
    assert code == 0
    assert "pip install 'lrkit[ray]'" in flat(out)


def test_a_sweep_name_is_printed_as_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = 'it\'s "quoted"'
    args = ["sweep", "--lr", "0.1", "--batch-size", "64", "--epochs", "0.5", "--store", "q.sqlite"]
    code, out, err = run([*args, *USER, "--name", name], capsys)
    assert code == 0, err
    assert f"sweep '{name}' in q.sqlite: 1 trials, 1 run now, 0 stored" in out
    assert "\\" not in out


# Ctrl-C


def count_trials(store: Path, where: str = "status != 'running'") -> int:
    """Trials that match ``where`` (by default the finished: done or diverged) in a store
    another process may be writing; 0 while there is no store."""
    if not store.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            (count,) = db.execute(f"SELECT COUNT(*) FROM trials WHERE {where}").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(count)


INTERRUPTED_SWEEP = re.compile(
    r"lrkit sweep: interrupted: (\d+) of 16 trials finished and kept in runs\.sqlite; "
    r"run the same command again to resume"
)


def start_sweep(folder: Path, engine: str) -> subprocess.Popen[bytes]:
    """A sweep of 16 trials on the bundled sample, long enough to be interrupted, in its own
    session (a process group of its own, as a terminal's foreground job)."""
    command = [
        sys.executable,
        "-m",
        "lrkit",
        "sweep",
        "--lr",
        "0.05,0.1,0.2,0.5",
        "--batch-size",
        "16,32,64,128",
        "--epochs",
        "4",
        "--store",
        "runs.sqlite",
        "--device",
        "cpu",
        "--engine",
        engine,
    ]
    env = {**os.environ, "LRKIT_DATA_DIR": str(bundled_sample_dir())}
    return subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_for_done(process: subprocess.Popen[bytes], store: Path, more_than: int) -> None:
    """Until the store holds more than ``more_than`` done trials; the sweep still running."""
    deadline = time.monotonic() + 180
    while process.poll() is None and time.monotonic() < deadline:
        if count_trials(store, "status = 'done'") > more_than:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[1].decode()


def check_interrupted(process: subprocess.Popen[bytes], store: Path) -> None:
    """Ctrl-C to the whole group; then exit 130, one line saying what the store keeps, no
    process of the group left."""
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    assert out == b""
    match = INTERRUPTED_SWEEP.fullmatch(the_line(err.decode()))
    assert match is not None, err.decode()
    kept = int(match.group(1))
    assert 1 <= kept < 16
    assert count_trials(store) == kept  # what it says is what the store holds
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no worker outlived it


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["vectorized", "sequential"])
def test_ctrl_c_on_a_sweep_says_what_was_kept(tmp_path: Path, engine: str) -> None:
    """SIGINT to the whole process group, as a terminal sends it: the vectorized engine's
    forked workers get it too, and none prints a traceback."""
    process = start_sweep(tmp_path, engine)
    wait_for_done(process, tmp_path / "runs.sqlite", 0)
    check_interrupted(process, tmp_path / "runs.sqlite")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux: from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc (Linux)")
def test_ctrl_c_reaching_the_workers_first_leaves_them_working(tmp_path: Path) -> None:
    """A group's processes get the signal in no set order: a worker that takes it before
    the parent must not fail the sweep (nor print a traceback); the parent decides."""
    store = tmp_path / "runs.sqlite"
    process = start_sweep(tmp_path, "vectorized")
    wait_for_done(process, store, 0)
    workers = children(process.pid)
    assert workers
    for worker in workers:
        os.kill(worker, signal.SIGINT)
    wait_for_done(process, store, count_trials(store, "status = 'done'"))  # still working
    check_interrupted(process, store)


def interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("verb", "target"),
    [("find", "lrkit.rangetest.find.find_lr"), ("noise", "lrkit.noise.tracking.track_noise_scale")],
)
def test_ctrl_c_during_a_measurement_writes_nothing(
    workdir: Path,
    verb: str,
    target: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(target, interrupt)
    code, out, err = run([verb, "--json", "out/r.json", "--plot", "r.png"], capsys)
    assert code == 130
    assert out == ""
    assert err == f"lrkit {verb}: interrupted: nothing written\n"
    assert not (workdir / "out").exists() and not (workdir / "r.png").exists()


def test_ctrl_c_on_reproduce_says_where_to_resume(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("lrkit.cli.reproduce_command.execute", interrupt)
    code, out, err = run(["reproduce", "--quick"], capsys)
    assert code == 130 and out == ""
    assert the_line(err) == (
        "lrkit reproduce: interrupted: 0 of 14 trials finished and kept in "
        f"{Path('lrkit-reproduce') / 'reproduce.sqlite'}; run the same command again to resume"
    )


# a write that fails at the end


@needs_dev_full
@pytest.mark.parametrize(
    "args",
    [
        ["find", *USER, "--rounds", "1", "--no-plot"],
        ["noise", *USER, "--epochs", "0.5", "--examples", "64"],
    ],
)
def test_a_full_disk_at_the_end_exits_2_naming_the_output(
    workdir: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run([*args, "--json", str(DEV_FULL)], capsys)
    assert code == 2
    assert out  # the summary was printed
    assert the_line(err) == (
        f"lrkit {args[0]}: error: --json {DEV_FULL}: could not write (No space left on device)"
    )


@needs_dev_full
def test_a_sweep_whose_json_fails_keeps_its_trials(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sweep", "--lr", "0.1,0.5", "--batch-size", "16,64", "--epochs", "1"]
    code, _, err = run([*args, "--store", "s.sqlite", *USER, "--json", str(DEV_FULL)], capsys)
    assert code == 2
    assert the_line(err) == (
        f"lrkit sweep: error: --json {DEV_FULL}: could not write (No space left on device); "
        "the trials are kept in s.sqlite: run the same command again to write it"
    )
    assert count_trials(workdir / "s.sqlite") == 4
    code, out, _ = run([*args, "--store", "s.sqlite", *USER], capsys)
    assert code == 0 and "4 trials, 0 run now, 4 stored" in out


def test_a_plot_folder_blocked_meanwhile_exits_2_naming_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import sweep_command

    real = sweep_command.execute

    def execute_then_block(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        (workdir / "figs").write_text("a file where the folder was to be")
        return result

    monkeypatch.setattr(sweep_command, "execute", execute_then_block)
    args = ["sweep", "--lr", "0.1", "--batch-size", "64", "--epochs", "0.5", "--store", "s.sqlite"]
    code, _, err = run([*args, *USER, "--plot-dir", "figs"], capsys)
    assert code == 2
    line = the_line(err)
    assert line.startswith("lrkit sweep: error: --plot-dir figs: could not write")
    assert line.endswith(
        "; the trials are kept in s.sqlite: run the same command again to write it"
    )


@needs_dev_full
@pytest.mark.slow
def test_reproduce_whose_json_fails_keeps_its_trials_and_figures(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["reproduce", "--epochs", "0.5", "--json", str(DEV_FULL)], capsys)
    assert code == 2
    store = Path("lrkit-reproduce") / "reproduce.sqlite"
    assert err.splitlines()[-1] == (
        f"lrkit reproduce: error: --json {DEV_FULL}: could not write (No space left on device); "
        f"the trials are kept in {store}: run the same command again to write it"
    )
    assert count_trials(workdir / store) == 14  # the four grids of 4 share two trials
    assert (workdir / "lrkit-reproduce" / "summary.md").is_file()


# a loss that is never finite


def test_find_with_a_loss_never_finite_blames_no_learning_rate(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["find", "--loss", "badmodels:nan_loss", "--no-plot"], capsys)
    assert code == 0, err
    assert (
        "the loss was not finite from the first iteration, at the smallest lr (0.0001); "
        "check the model, the data and the loss"
    ) in out
    assert "widen" not in out


def test_sweep_where_every_trial_diverged_from_the_start_says_so(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sweep", "--lr", "0.1,0.5", "--batch-size", "16,64", "--epochs", "1"]
    extra = ["--loss", "badmodels:nan_loss", "--json", "s.json"]
    code, out, err = run([*args, "--store", "s.sqlite", *USER, *extra], capsys)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("16 ", "64 "))]
    assert [r[:2] for r in rows] == [["16", "-"], ["64", "-"]]
    assert all("every trial diverged" in " ".join(r) for r in rows)
    assert (
        "every trial diverged at its first check: the training loss was not finite from the "
        "start, at every learning rate (the smallest, 0.1, too); check the model, the data "
        "and the loss"
    ) in out
    document = json.loads((workdir / "s.json").read_text())
    assert document["diverged_from_the_start"] is True
    for key in ("best_lr_by_batch_size", "best_lr_by_batch_size_best_accuracy"):
        assert document[key] == {
            "16": {"lr": None, "every_trial_diverged": True},
            "64": {"lr": None, "every_trial_diverged": True},
        }


def test_sweep_where_one_batch_size_diverged_says_so_and_ranks_the_other(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sweep", "--lr", "0.1,0.5", "--batch-size", "16,64", "--epochs", "3"]
    extra = ["--loss", "badmodels:nan_later_at_64", "--engine", "sequential", "--json", "s.json"]
    code, out, err = run([*args, "--store", "s.sqlite", *USER, *extra], capsys)
    assert code == 0, err
    assert "batch size 64: every trial diverged, so it has no best lr; try smaller" in out
    assert "at its first check" not in out  # the first trial at 64 got past its first check
    document = json.loads((workdir / "s.json").read_text())
    assert document["diverged_from_the_start"] is False
    best = document["best_lr_by_batch_size"]
    assert best["64"] == {"lr": None, "every_trial_diverged": True}
    assert best["16"]["lr"] in (0.1, 0.5) and best["16"]["every_trial_diverged"] is False
    at_64 = [t for t in document["trials"] if t["batch_size"] == 64]
    assert {t["status"] for t in at_64} == {"diverged"}


def test_noise_with_gradients_never_finite_measures_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (Inputs that are not finite are refused when loaded: tests/test_faults_inputs.py.)
    args = [*USER, "--loss", "badmodels:nan_loss", "--epochs", "0.5", "--examples", "64"]
    code, out, err = run(["noise", *args], capsys)
    assert code == 0, err
    assert (
        "training diverged at iteration 1, so no noise scale was measured: the gradients "
        "were not finite from the start, before any step; check the model, the data and the "
        "loss"
    ) in out
    assert "|G|^2 estimated at or below zero" not in out


# the library's own bounds: a library user is refused as the CLI is, before allocating


def a_definition(**changes: object) -> SweepDefinition:
    fields: dict[str, object] = {
        "model": "m",
        "data": "d",
        "loss": "cross-entropy",
        "epochs": 30.0,
        "eval_every": 0.5,
        "val_fraction": 1 / 12,
        "optimizer": "sgd",
        "momentum": 0.0,
        "weight_decay": 0.0,
        "schedule": None,
        "batch_size_schedule": None,
        "seed": 0,
    }
    return SweepDefinition(**{**fields, **changes})  # type: ignore[arg-type]


LIBRARY_CALLS: list[tuple[str, Callable[[], object], str]] = [
    ("segment", lambda: segment(0.1, 0.5, 1e-9, 5), "400000001 lrs held 5 iterations each"),
    (
        "exponential_range",
        lambda: exponential_range(1e-6, 1.0, 10**9),
        "num_steps must be an integer in [2, 1000000], got 1000000000",
    ),
    (
        "linear_range",
        lambda: linear_range(1e-6, 1.0, 1000, 10**4),
        "num_steps x hold = 1000 x 10000 runs 10000000 iterations",
    ),
    (
        "segments_program",
        lambda: segments_program(parse_segments("0.1:0.9:0.1@100000,1:9:1@100000")),
        "the segments together runs 1800000 iterations",
    ),
    (
        "LrProgram",
        lambda: LrProgram((0.1,), (2_000_000,), "one long hold"),
        "the program runs 2000000 iterations; a program runs at most 1000000",
    ),
    (
        "RangeTest",
        lambda: RangeTest(exponential_range(1e-3, 1.0, 3), diverge_factor=float("nan")),
        "diverge_factor must be a finite number > 1, got nan",
    ),
    (
        "NoiseSettings",
        lambda: NoiseSettings(examples=10**8).check(469),
        "examples must be an integer in [1, 469] (the training examples)",
    ),
    (
        "NoiseSettings",
        lambda: NoiseSettings(seed=2**32).check(),
        "seed must be an integer in [0, 4294967295], got 4294967296",
    ),
    ("product_grid", lambda: product_grid([0.1], [16], 10**8), "the grid has 100000000"),
    ("pairs_grid", lambda: pairs_grid([(16, 0.1)], 10**6), "the grid has 1000000 trials"),
    (
        "SweepDefinition",
        lambda: a_definition(epochs=1e9, eval_every=1e-6),
        "eval_every must be a number in [10000, 1e+09]",
    ),
    (
        "SweepDefinition",
        lambda: a_definition(momentum=1.0),
        "momentum must be a number in [0, 1), got 1.0",
    ),
]


@pytest.mark.parametrize(("name", "call", "message"), LIBRARY_CALLS)
def test_the_library_refuses_what_the_cli_refuses(
    name: str, call: Callable[[], object], message: str
) -> None:
    with pytest.raises(LrkitValueError) as caught:
        call()
    assert message in str(caught.value), name


def test_a_measurement_uses_at_most_the_training_examples_by_default() -> None:
    assert NoiseSettings().examples_for(469) == 469
    assert NoiseSettings().examples_for(60_000) == 2048
    assert NoiseSettings(examples=100).examples_for(469) == 100


def stored_sweep(workdir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, err = run([*SWEEP, "--epochs", "0.5", "--eval-every", "0.5", *USER], capsys)
    assert code == 0, err
    return workdir / "new.sqlite"


@pytest.mark.parametrize(
    ("verb", "option"),
    [(["runs", "--store", "new.sqlite"], "--csv"), (["report", "--store", "new.sqlite"], "--out")],
)
def test_runs_and_report_check_their_output_first_and_name_a_write_that_fails(
    workdir: Path, capsys: pytest.CaptureFixture[str], verb: list[str], option: str
) -> None:
    store = stored_sweep(workdir, capsys)
    before = store.read_bytes()
    code, out, err = run([*verb, option, "file.txt/out.x"], capsys)
    assert code == 2 and out == ""
    assert the_line(err).startswith(f"lrkit {verb[0]}: error: {option} file.txt/out.x: ")
    if DEV_FULL.exists():
        code, _, err = run([*verb, option, str(DEV_FULL)], capsys)
        assert code == 2
        assert err.splitlines()[-1] == (
            f"lrkit {verb[0]}: error: {option} {DEV_FULL}: could not write "
            "(No space left on device)"
        )
    assert store.read_bytes() == before
