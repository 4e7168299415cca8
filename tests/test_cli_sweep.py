"""`lrkit sweep`, `runs`, `scale` and `reproduce` end to end, and their bad-input contract."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

from cli_run import run

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))

    def as_dataset():
        x, y = make_data()["train"]
        return torch.utils.data.TensorDataset(x, y)

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1300, 10, generator=g)
        y = x[:, :3].argmax(dim=1)
        return {"train": (x[:1000], y[:1000]), "val": (x[1000:1200], y[1000:1200]),
                "test": (x[1200:], y[1200:])}
    """
)
USER = ["--model", "sweepmodels:make_model", "--data", "sweepmodels:make_data"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    (tmp_path / "sweepmodels.py").write_text(USER_MODULE)
    return tmp_path


def sweep_args(*extra: str) -> list[str]:
    return [
        "sweep",
        "--lr",
        "0.05,0.5,2",
        "--batch-size",
        "16,64",
        "--epochs",
        "2",
        "--store",
        "runs.sqlite",
        *USER,
        *extra,
    ]


def test_sweep_resume_json_figures_runs_and_scale(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        sweep_args("--repeats", "2", "--json", "s.json", "--plot-dir", "figs"), capsys
    )
    assert code == 0, err
    assert "12 trials, 12 run now, 0 stored" in out
    document = json.loads((workdir / "s.json").read_text())
    assert len(document["trials"]) == 12
    trial = document["trials"][0]
    assert set(trial) >= {
        "lr",
        "batch_size",
        "repeat",
        "status",
        "final_val_accuracy",
        "best_val_accuracy",
        "test_accuracy",
        "seconds",
    }
    assert set(document["best_lr_by_batch_size"]) == {"16", "64"}
    assert set(document["fit"]) >= {"k", "k_stderr"}
    for name in ("accuracy-vs-iteration", "heatmap", "accuracy-vs-epoch", "best-lr-fit"):
        assert (workdir / "figs" / f"{name}.png").stat().st_size > 10_000

    # the same command again runs nothing
    code, out, _ = run(sweep_args("--repeats", "2"), capsys)
    assert code == 0 and "12 trials, 0 run now, 12 stored" in out
    # a grown grid runs only the new trials
    code, out, _ = run(
        [
            "sweep",
            "--lr",
            "0.05,0.5,2,1",
            "--batch-size",
            "16,64",
            "--epochs",
            "2",
            "--store",
            "runs.sqlite",
            *USER,
            "--repeats",
            "2",
        ],
        capsys,
    )
    assert code == 0 and "16 trials, 4 run now, 12 stored" in out

    code, out, _ = run(["runs", "--store", "runs.sqlite", "--csv", "t.csv"], capsys)
    assert code == 0 and "done 16" in out
    assert len((workdir / "t.csv").read_text().strip().splitlines()) == 17
    code, _, _ = run(["runs", "--store", "runs.sqlite", "--csv", "p.csv", "--points"], capsys)
    assert code == 0
    assert len((workdir / "p.csv").read_text().strip().splitlines()) == 1 + 16 * 5

    code, out, _ = run(
        [
            "scale",
            "--lr",
            "0.5",
            "--batch-size",
            "16",
            "--to",
            "64",
            "--rule",
            "fit",
            "--store",
            "runs.sqlite",
        ],
        capsys,
    )
    assert (
        code == 0
        and "learning rate for batch size 64:" in out
        and "fitted over batch sizes 16, 64" in out
    )


@pytest.mark.parametrize(("rule", "expected"), [("linear", "2"), ("sqrt", "1")])
def test_scale_rules(rule: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["scale", "--lr", "0.5", "--batch-size", "128", "--to", "512", "--rule", rule], capsys
    )
    assert code == 0
    assert out.splitlines()[0] == f"learning rate for batch size 512: {expected}"


def test_a_schedule_and_a_batch_size_schedule_run(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        [
            "sweep",
            "--lr",
            "0.5",
            "--batch-size",
            "16",
            "--epochs",
            "2",
            "--store",
            "s.sqlite",
            *USER,
            "--schedule",
            "cosine:min_lr=0.01",
            "--batch-size-schedule",
            "factor=2,milestones=1",
        ],
        capsys,
    )
    assert code == 0, err


@pytest.mark.parametrize("schedule", ["one_cycle", "cyclic:max_lr=1,step_size=20"])
def test_schedules_that_need_the_trials_length_or_a_peak_run(
    workdir: Path, capsys: pytest.CaptureFixture[str], schedule: str
) -> None:
    """one_cycle's rise must be at least one iteration of the trial's real length (not of a
    stand-in length of 1), and cyclic takes its base_lr from --lr and its max_lr as given."""
    args = ["sweep", "--lr", "0.1", "--batch-size", "16,64", "--epochs", "1", "--eval-every", "1"]
    code, out, err = run([*args, "--store", "s.sqlite", *USER, "--schedule", schedule], capsys)
    assert code == 0, err
    assert "2 trials, 2 run now" in out


@pytest.mark.slow  # the whole quick experiment: in make test, not test-fast
def test_reproduce_quick(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["reproduce", "--quick", "--epochs", "0.5", "--json", "r.json"], capsys)
    assert code == 0, err
    out_dir = workdir / "lrkit-reproduce"
    for name in ("batch-128", "lr-0.5", "batch-32", "batch-16", "heatmap", "best-lr-fit"):
        assert (out_dir / f"{name}.png").stat().st_size > 10_000
    assert "the chapter's claims:" in out
    assert "at batch 16, lr 0.1 is best:" in out
    assert (out_dir / "summary.md").read_text().count("- at batch") == 3
    document = json.loads((workdir / "r.json").read_text())
    assert len(document["trials"]) == 14
    assert [
        c["verdict"] in ("supported", "within noise", "not supported") for c in document["claims"]
    ] == [True] * 3


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "", "--batch-size", "16"], "--lr is empty"),
        (["--lr", "0.1,-0.2", "--batch-size", "16"], "--lr must be a finite number > 0, got -0.2"),
        (["--lr", "0.1,0.1", "--batch-size", "16"], "--lr lists 0.1 more than once"),
        (["--lr", "0.1", "--batch-size", "16,0"], "--batch-size must be an integer > 0, got 0"),
        (["--lr", "0.1", "--batch-size", "16,16"], "--batch-size lists 16 more than once"),
        (["--lr", "0.1", "--batch-size", "1.5"], "--batch-size must be an integer > 0, got '1.5'"),
        (
            ["--lr", "0.1", "--batch-size", "16", "--epochs", "0"],
            "--epochs must be a number in (0, 1e+09]",
        ),
        (
            ["--lr", "0.1", "--batch-size", "16", "--eval-every", "0"],
            "--eval-every must be a number in [0.0003, 30] (at most the epochs, and at most "
            "100000 checks a run), got 0.0",
        ),
        (
            ["--lr", "0.1", "--batch-size", "5000"],
            "--batch-size must be at most the number of training examples (1000)",
        ),
        (
            ["--lr", "0.1", "--batch-size", "16", "--schedule", "nosuch"],
            "unknown schedule 'nosuch'",
        ),
        (
            [
                "--lr",
                "0.1",
                "--batch-size",
                "16",
                "--schedule",
                "step:base_lr=1,gamma=0.5,step_size=2",
            ],
            "base_lr comes from the trial's --lr",
        ),
        (
            ["--lr", "0.1", "--batch-size", "16", "--batch-size-schedule", "factor=2"],
            "needs milestones",
        ),
        (
            ["--lr", "0.1", "--batch-size", "16", "--repeats", "0"],
            "--repeats must be an integer > 0",
        ),
        (
            ["--lr", "0.1", "--batch-size", "16", "--engine", "turbo"],
            "--engine must be one of auto, sequential, vectorized, ray, got 'turbo'",
        ),
        (
            ["--lr", "0.1", "--batch-size", "16", "--workers", "0"],
            "--workers must be an integer in [1, ",
        ),
    ],
)
def test_bad_input_exits_2_and_creates_no_store(
    workdir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["sweep", *args, "--store", "new.sqlite", *USER], capsys)
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (workdir / "new.sqlite").exists()


def test_a_file_that_is_not_a_store_is_refused_untouched(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workdir / "notes.txt"
    path.write_text("my notes")
    code, _, err = run(
        [
            "sweep",
            "--lr",
            "0.1",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--store",
            "notes.txt",
            *USER,
        ],
        capsys,
    )
    assert code == 2 and "--store notes.txt is not an lrkit results store" in err
    assert path.read_text() == "my notes"


def test_another_definition_is_refused_and_the_store_is_untouched(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sweep_args(), capsys)[0] == 0
    db = sqlite3.connect(workdir / "runs.sqlite")
    before = db.execute("SELECT COUNT(*), SUM(seconds) FROM trials").fetchone()
    db.close()
    code, out, err = run(
        [
            "sweep",
            "--lr",
            "0.05,0.5,2",
            "--batch-size",
            "16,64",
            "--epochs",
            "3",
            "--store",
            "runs.sqlite",
            *USER,
        ],
        capsys,
    )
    assert code == 2 and out == ""
    assert (
        "already holds sweep 'default' with another definition "
        "(--epochs: the store has 2.0, this run 3.0)" in err
    )
    db = sqlite3.connect(workdir / "runs.sqlite")
    assert db.execute("SELECT COUNT(*), SUM(seconds) FROM trials").fetchone() == before


def test_runs_on_a_missing_store(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["runs", "--store", "none.sqlite"], capsys)
    assert code == 2 and "--store none.sqlite does not exist" in err


def test_scale_fit_needs_a_store(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        ["scale", "--lr", "0.5", "--batch-size", "128", "--to", "512", "--rule", "fit"], capsys
    )
    assert code == 2 and "--rule fit needs --store" in err


def test_a_sweep_refuses_data_that_is_not_tensors(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        [
            "sweep",
            "--lr",
            "0.1",
            "--batch-size",
            "16",
            "--store",
            "s.sqlite",
            "--model",
            "sweepmodels:make_model",
            "--data",
            "sweepmodels:as_dataset",
        ],
        capsys,
    )
    assert code == 2 and out == ""
    assert "--data: a sweep needs tensor data (TensorData or (x, y)) with a validation part" in err
    assert not (workdir / "s.sqlite").exists()
