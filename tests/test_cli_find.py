"""`lrkit find` end to end: defaults, a user's model by import path, JSON, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cli_run import run
from lrkit.rangetest.programs import TEXTBOOK_FIRST_ROUND

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 3))

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1200, 12, generator=g)
        y = (x[:, :3].argmax(dim=1))
        return x, y

    def wrong_output():
        return nn.Linear(12, 2)

    not_a_model = 3

    calls = []

    def counting_loss(output, target):
        calls.append(1)
        return torch.nn.functional.cross_entropy(output, target)
    """
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    (tmp_path / "usermodels.py").write_text(USER_MODULE)
    return tmp_path


def test_find_with_no_arguments(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["find"], capsys)
    assert code == 0, err
    assert "MNIST sample shipped with lrkit" in err
    assert "suggested learning rate:" in out
    figure = workdir / "lrkit-find.png"
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert figure.stat().st_size > 30_000


def test_json_has_the_documented_shape(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["find", "--rounds", "2", "--json", "out/find.json", "--no-plot"], capsys)
    assert code == 0, err
    document = json.loads((workdir / "out" / "find.json").read_text())
    assert document["model"] == "mnist-mlp"
    assert document["batch_size"] == 16
    assert len(document["rounds"]) == 2
    point = document["rounds"][0]["points"][0]
    assert set(point) == {"iteration", "lr", "loss", "smoothed_loss"}
    hold = document["rounds"][0]["holds"][0]
    assert {"lr", "mean_loss", "eval_loss"} <= set(hold)
    assert set(document["suggestions"]) == {"steepest", "minimum", "valley", "turning_point"}
    assert document["suggested_lr"] == document["suggestions"]["turning_point"]
    assert document["diverged_at"] is None or document["diverged_at"] > 0
    assert not (workdir / "lrkit-find.png").exists()


def test_the_textbooks_segment_program_runs(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        [
            "find",
            "--segments",
            TEXTBOOK_FIRST_ROUND,
            "--rounds",
            "1",
            "--json",
            "t.json",
            "--no-plot",
        ],
        capsys,
    )
    assert code == 0, err
    holds = json.loads((workdir / "t.json").read_text())["rounds"][0]["holds"]
    assert [h["lr"] for h in holds][:3] == [0.0001, 0.0002, 0.0003]
    assert len(holds) <= 47


def test_full_mnist_through_the_environment(
    workdir: Path,
    mnist_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LRKIT_DATA_DIR", str(mnist_dir))
    code, out, err = run(["find", "--rounds", "1", "--no-plot"], capsys)
    assert code == 0, err
    assert "shipped with lrkit" not in err
    assert f"MNIST ({mnist_dir.resolve()})" in out


def test_user_model_and_data_by_import_path(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        [
            "find",
            "--model",
            "usermodels:make_model",
            "--data",
            "usermodels:make_data",
            "--exp",
            "1e-4:10:80",
            "--rounds",
            "2",
            "--json",
            "u.json",
            "--plot",
            "u.svg",
        ],
        capsys,
    )
    assert code == 0, err
    assert "suggested learning rate" in out
    document = json.loads((workdir / "u.json").read_text())
    assert document["model"] == "usermodels:make_model"
    assert document["suggested_lr"] is not None
    assert (workdir / "u.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--segments", "1e-3:9e-3"],
            "--segments: bad segment '1e-3:9e-3': expected start:stop:step@hold",
        ),
        (["--segments", "9e-3:1e-3:1e-3@10"], "start must be < stop"),
        (["--segments", "1e-3:9e-3:0@10"], "step must be > 0"),
        (["--segments", "1e-3:9e-3:1e-3@0"], "hold must be an integer > 0"),
        (["--segments", ","], "--segments is empty"),
        (["--exp", "1e-3:1"], "--exp must be START:END:STEPS"),
        (["--exp", "1:1e-3:10"], "--exp 1:1e-3:10: end_lr must be > start_lr (1), got 0.001"),
        (["--exp", "1e-3:1:10", "--linear", "0.1:1:10"], "give one program"),
        (
            ["--batch-size", "100000"],
            "--batch-size must be at most the number of training examples (5500)",
        ),
        (["--batch-size", "0"], "--batch-size must be an integer > 0"),
        (
            ["--model", "nosuchmodule:make"],
            "--model 'nosuchmodule:make': cannot import 'nosuchmodule'",
        ),
        (["--model", "usermodels:missing"], "has no attribute 'missing'"),
        (["--model", "usermodels:not_a_model"], "is not callable"),
        (["--model", "resnet"], "--model 'resnet' is not a built-in model"),
        (
            ["--model", "usermodels:wrong_output", "--data", "usermodels:make_data"],
            "does not fit labels 0..2",
        ),
        (["--model", "usermodels:make_model"], "the model fails on a batch of inputs"),
        (["--data-dir", "."], "has no MNIST IDX files"),
        (["--data-dir", "nowhere"], "--data-dir nowhere does not exist"),
        (["--curve", "median"], "--curve must be one of auto, eval, mean, smoothed"),
        (
            ["--suggest", "best"],
            "--suggest must be one of turning_point, valley, steepest, minimum",
        ),
        (["--device", "tpu"], "--device must be one of auto, cpu, cuda"),
        (["--val-fraction", "2"], "--val-fraction must be a fraction in (0, 1) like 1/12"),
        (["--val-fraction", "x"], "--val-fraction must be a fraction in (0, 1) like 1/12"),
        (["--amp", "--device", "cpu"], "--amp needs --device cuda"),
        (["--plot", "fig.jpg"], "--plot must end in one of .png, .svg, .pdf"),
        (["--optimizer", "torch.nn:Linear"], "Linear is not a torch.optim.Optimizer subclass"),
        (["--optimizer-args", "{bad"], "--optimizer-args is not valid JSON"),
        (
            ["--optimizer", "torch.optim:RAdam", "--optimizer-args", '{"momentum": 0.9}'],
            "--optimizer-args: torch.optim:RAdam refuses them",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    workdir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["find", *args], capsys)
    assert code == 2, err
    assert out == ""
    lines = [line for line in err.strip().splitlines() if "shipped with lrkit" not in line]
    assert len(lines) == 1, err
    assert message in lines[0]


def test_an_optimizer_by_path_with_its_arguments(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["find", "--optimizer", "torch.optim:RAdam", "--optimizer-args", '{"eps": 1e-6}']
    code, out, err = run([*args, "--no-plot", "--json", "f.json"], capsys)
    assert code == 0, err
    assert "suggested learning rate" in out
    assert "plain loop" in err  # RAdam does not stack
    assert json.loads((workdir / "f.json").read_text())["suggested_lr"] > 0


@pytest.mark.slow
def test_console_script_runs_and_stays_quiet_without_a_terminal(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lrkit", "find", "--rounds", "1", "--no-plot"],
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "suggested learning rate" in result.stdout
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal


def test_loss_by_import_path(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        [
            "find",
            "--loss",
            "usermodels:counting_loss",
            "--rounds",
            "1",
            "--no-plot",
            "--exp",
            "1e-3:1:30",
        ],
        capsys,
    )
    assert code == 0, err
    import usermodels  # type: ignore[import-not-found]

    # one checking forward pass, then one per iteration, and the evaluations
    assert len(usermodels.calls) > 30


def test_loss_class_by_import_path(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        ["find", "--loss", "torch.nn:CrossEntropyLoss", "--rounds", "1", "--no-plot"], capsys
    )
    assert code == 0, err


def test_the_same_command_gives_the_same_test_whatever_the_global_rng(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model with dropout draws from the global RNG as it trains, which torch seeds afresh
    in every process: the test seeds it from --seed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dropjob.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make_model():\n"
        "    layers = [nn.Linear(8, 32), nn.Dropout(0.5), nn.Tanh(), nn.Linear(32, 2)]\n"
        "    return nn.Sequential(*layers)\n\n"
        "def make_data():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randn(600, 8, generator=g)\n"
        "    return x, (x[:, 0] - x[:, 1] > 0).long()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["find", "--model", "dropjob:make_model", "--data", "dropjob:make_data", "--no-plot"]
    args += ["--rounds", "1", "--engine", "sequential"]
    losses = []
    for rng_seed in (1, 2):
        torch.manual_seed(rng_seed)  # what ran before in this process
        status, _, err = run([*args, "--json", f"r{rng_seed}.json"], capsys)
        assert status == 0, err
        found = json.loads((tmp_path / f"r{rng_seed}.json").read_text())
        losses.append([p["loss"] for p in found["rounds"][0]["points"]])
    assert losses[0] == losses[1]
