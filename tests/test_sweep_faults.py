"""`lrkit sweep` with a model or loss that fails: a model that does not fit the data, or a
loss that raises on the first batch, is refused before any trial (exit 2, no store); a loss
that raises in the middle of a trial fails that trial, recorded with its message, while the
sweep goes on, and a rerun runs the failed trials again."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

from cli_run import run

USER_MODULE = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))

    def too_narrow():
        return nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 3))

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(700, 10, generator=g)
        y = x[:, :3].argmax(dim=1)
        return {"train": (x[:500], y[:500]), "val": (x[500:600], y[500:600]),
                "test": (x[600:], y[600:])}

    def always_raises(output, target):
        raise ValueError("this loss is broken")

    def raises_when_large(output, target):
        loss = F.cross_entropy(output, target)
        if loss.item() > 5.0:
            raise RuntimeError("the loss went above 5")
        return loss
    """
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "faultmodels.py").write_text(USER_MODULE)
    return tmp_path


def sweep(*extra: str, model: str = "faultmodels:make_model") -> list[str]:
    return [
        "sweep",
        "--lr",
        "0.05,50",
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--store",
        "s.sqlite",
        "--model",
        model,
        "--data",
        "faultmodels:make_data",
        *extra,
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            sweep(model="faultmodels:too_narrow"),
            "the model fails on a batch of inputs of shape (16, 10)",
        ),
        (
            sweep("--loss", "faultmodels:always_raises"),
            "the loss fails on the model's output of shape (16, 3) and targets of shape (16,): "
            "ValueError: this loss is broken",
        ),
    ],
    ids=["model-does-not-fit", "loss-raises-at-once"],
)
def test_a_model_or_loss_that_fails_at_once_is_refused_before_any_trial(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"lrkit sweep: error: {message}")
    assert not (workdir / "s.sqlite").exists()


@pytest.mark.parametrize("engine", ["sequential", "vectorized"])
def test_a_loss_that_raises_mid_run_fails_that_trial_and_the_sweep_goes_on(
    workdir: Path, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    args = sweep("--loss", "faultmodels:raises_when_large", "--engine", engine, "--workers", "1")
    code, out, err = run(args, capsys)
    assert code == 1, err
    assert "2 trials, 2 run now" in out
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert line.startswith("lrkit sweep: error: ")
    assert "RuntimeError: the loss went above 5" in line
    assert "run again when the same command runs again" in line
    db = sqlite3.connect(workdir / "s.sqlite")
    rows = dict(db.execute("SELECT lr, status FROM trials").fetchall())
    errors = [e for (e,) in db.execute("SELECT error FROM trials WHERE status = 'failed'")]
    db.close()
    assert rows[50.0] == "failed"
    assert errors and all(e == "RuntimeError: the loss went above 5" for e in errors)
    if engine == "sequential":  # alone, the good trial trains to its end
        assert rows[0.05] == "done"
    # A rerun keeps what finished and runs the failed trials again.
    code, out, _ = run(args, capsys)
    assert code == 1
    finished = sum(status == "done" for status in rows.values())
    assert f"2 trials, {2 - finished} run now, {finished} stored" in out
