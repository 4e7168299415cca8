"""`lrkit sweep --engine ray`: a local Ray instance with 2 CPUs runs the stacks as tasks; a
worker killed in the middle of a task makes Ray run it again, and the store ends with every
trial exactly once and the numbers of an uninterrupted local run. Without Ray installed the
engine exits 2 with the install hint."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cli_run import run

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'lrkit[ray]')")

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3))

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(3000, 10, generator=g)
        return x, x[:, :3].argmax(dim=1)
    """
)
GRID = ["--lr", "0.05,0.2,0.5,1", "--batch-size", "8,16", "--epochs", "30"]
USER = ["--model", "raymodels:make_model", "--data", "raymodels:make_data"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "raymodels.py").write_text(USER_MODULE)
    return tmp_path


def task_processes() -> list[int]:
    """Ray workers running a trial task (Ray titles them ray::train_task)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if command.startswith(b"ray::train_task"):
                found.append(int(entry.name))
    return found


def results(path: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT t.batch_size, t.lr, t.repeat, t.status, t.final_val_accuracy, "
        "COUNT(p.iteration) FROM trials t JOIN points p ON p.trial_id = t.id "
        "GROUP BY t.id ORDER BY t.batch_size, t.lr"
    ).fetchall()
    db.close()
    return rows


def finished(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(
            db.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
        )
    except sqlite3.Error:
        return 0
    finally:
        db.close()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's workers in /proc (Linux)")
def test_a_killed_worker_runs_its_trials_again_and_loses_none(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [sys.executable, "-m", "lrkit", "sweep", *GRID, "--store", "ray.sqlite", *USER]
    # A local Ray instance takes the machine's CPUs: 2 here and in CI.
    sweep = subprocess.Popen([*command, "--engine", "ray"], cwd=workdir, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not task_processes() and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    victims = task_processes()
    assert victims, sweep.stderr.read().decode() if sweep.stderr else "no Ray task started"
    assert finished(workdir / "ray.sqlite") == 0  # the kill lands in the middle of a task
    os.kill(victims[0], signal.SIGKILL)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err.decode()

    db = sqlite3.connect(workdir / "ray.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 8  # each once
    db.close()
    # the same numbers as an uninterrupted run on the local vectorized engine
    code, _, err = run(["sweep", *GRID, "--store", "local.sqlite", *USER, "--workers", "2"], capsys)
    assert code == 0, err
    assert results(workdir / "ray.sqlite") == results(workdir / "local.sqlite")
    assert all(row[3] == "done" for row in results(workdir / "ray.sqlite"))


def test_without_ray_the_engine_exits_2_with_the_install_hint(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    code, out, err = run(
        [
            "sweep",
            "--lr",
            "0.1",
            "--batch-size",
            "8",
            "--store",
            "s.sqlite",
            *USER,
            "--engine",
            "ray",
        ],
        capsys,
    )
    assert code == 2 and out == ""
    assert err.strip() == (
        "lrkit sweep: error: --engine ray needs Ray, which is not installed: "
        "pip install 'lrkit[ray]'"
    )
    assert not (workdir / "s.sqlite").exists()
    code, _, err = run(
        [
            "sweep",
            "--lr",
            "0.1",
            "--batch-size",
            "8",
            "--store",
            "s.sqlite",
            *USER,
            "--address",
            "ray://head:10001",
        ],
        capsys,
    )
    assert code == 2 and "--address belongs to --engine ray" in err


def test_advise_races_on_ray_as_it_does_locally(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The race runs its rungs (and the edge rule's additions) as Ray tasks through the engine
    # contract; each candidate goes on from its checkpoint there as it does in one process.
    args = ["advise", *USER, "--epochs", "3", "--batch-size", "32", "--optimizer", "momentum"]
    advice = {}
    for engine in ("sequential", "ray"):
        code, _, err = run([*args, "--engine", engine, "--json", f"{engine}.json"], capsys)
        assert code == 0, err
        advice[engine] = json.loads((workdir / f"{engine}.json").read_text())
    local, remote = advice["sequential"], advice["ray"]
    assert remote["lr"] == local["lr"]
    assert [c["lr"] for c in remote["candidates"]] == [c["lr"] for c in local["candidates"]]
    for a, b in zip(remote["candidates"], local["candidates"], strict=True):
        assert a["epochs_run"] == b["epochs_run"]
        assert a["value"] == pytest.approx(b["value"], abs=1e-6)
