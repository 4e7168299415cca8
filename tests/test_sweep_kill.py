"""`kill -9` at random moments of a real `lrkit sweep` subprocess loses no finished trial,
runs none twice, and leaves the store consistent; the resumed results equal a clean run's."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

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
# (engine, batch sizes, epochs): the vectorized engine finishes a stack's trials together,
# so its grid has more batch sizes (more stacks) and epochs, and one worker process (stacks
# one after another, not two at once), to be killed several times even on a fast machine.
ENGINES = {
    "sequential": ("8,32,128", "8"),
    "vectorized": ("4,6,8,12,16,24,32,48,64,128", "12"),
}


def sweep(folder: Path, store: str, engine: str) -> subprocess.Popen[bytes]:
    sizes, epochs = ENGINES[engine]
    command = [
        sys.executable,
        "-m",
        "lrkit",
        "sweep",
        "--lr",
        "0.05,0.2,0.5,1",
        "--batch-size",
        sizes,
        "--engine",
        engine,
        "--epochs",
        epochs,
        "--store",
        store,
        "--model",
        "killmodels:make_model",
        "--data",
        "killmodels:make_data",
        "--device",
        "cpu",
        *(["--workers", "1"] if engine == "vectorized" else []),
    ]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def done_count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(
                db.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
            )
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def results(path: Path) -> dict[tuple[int, float], tuple[float, int]]:
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT t.batch_size, t.lr, t.final_val_accuracy, COUNT(p.iteration) "
        "FROM trials t JOIN points p ON p.trial_id = t.id GROUP BY t.id"
    ).fetchall()
    db.close()
    return {(b, lr): (acc, n) for b, lr, acc, n in rows}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_kill_9_at_random_moments_then_resume(tmp_path: Path, engine: str) -> None:
    (tmp_path / "killmodels.py").write_text(USER_MODULE)
    store = tmp_path / "killed.sqlite"
    rng = random.Random(1)
    kills = 0
    for _ in range(12):
        process = sweep(tmp_path, store.name, engine)
        before = done_count(store)
        deadline = time.monotonic() + 60
        # wait until the sweep is working through trials, then kill it at a random moment
        while (
            process.poll() is None and done_count(store) == before and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if process.poll() is not None:
            break
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
    final = sweep(tmp_path, store.name, engine)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert kills >= 3, kills  # the test did interrupt the sweep, several times

    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    trials = 4 * len(ENGINES[engine][0].split(","))
    assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == trials
    assert db.execute("SELECT COUNT(*) FROM trials WHERE status != 'done'").fetchone()[0] == 0
    assert (
        db.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT batch_size, lr, repeat FROM trials)"
        ).fetchone()[0]
        == trials
    )
    db.close()

    clean = tmp_path / "clean.sqlite"
    process = sweep(tmp_path, clean.name, engine)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()
    assert results(store) == results(clean)  # same accuracies, same number of points per trial
