"""`lrkit scale --rule noise` and `lrkit scale --compare` against a stored sweep."""

from __future__ import annotations

import json
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

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1300, 10, generator=g)
        y = x[:, :3].argmax(dim=1)
        return {"train": (x[:1000], y[:1000]), "val": (x[1000:1200], y[1000:1200])}
    """
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "scalemodels.py").write_text(USER_MODULE)
    return tmp_path


def test_noise_rule_from_a_number_or_lrkit_noise_json(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["scale", "--lr", "0.1", "--batch-size", "16", "--to", "160", "--rule", "noise"]
    code, out, err = run([*args, "--noise-scale", "160"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "learning rate for batch size 160: 0.55"  # 1.1 / (1 + 160/160)
    assert "lr_max = 1.1; batch 160 is in the transition regime (B_noise = 160)" in out
    (workdir / "noise.json").write_text(json.dumps({"critical_batch_size": 160.0}))
    code, out2, _ = run([*args, "--noise-json", "noise.json"], capsys)
    assert code == 0 and out2 == out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--rule noise needs the gradient noise scale"),
        (["--noise-scale", "0"], "--noise-scale must be a finite number > 0"),
        (["--noise-json", "missing.json"], "not a file written by lrkit noise"),
        (["--noise-scale", "5", "--noise-json", "x.json"], "not both"),
    ],
)
def test_noise_rule_bad_input(
    workdir: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["scale", "--lr", "0.1", "--batch-size", "16", "--to", "64", "--rule", "noise"]
    code, out, err = run([*args, *extra], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_compare_rules_against_a_stored_sweep(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        [
            "sweep",
            "--lr",
            "0.05,0.2,0.8",
            "--batch-size",
            "8,32,128",
            "--epochs",
            "1",
            "--store",
            "s.sqlite",
            "--model",
            "scalemodels:make_model",
            "--data",
            "scalemodels:make_data",
        ],
        capsys,
    )
    assert code == 0, err
    code, out, err = run(
        ["scale", "--compare", "--store", "s.sqlite", "--noise-scale", "100", "--json", "c.json"],
        capsys,
    )
    assert code == 0, err
    assert "8 (reference)" in out and "rms log2 error" in out
    assert "closest: " in out and "B_noise = 100 measured" in out
    document = json.loads((workdir / "c.json").read_text())
    assert document["reference_batch_size"] == 8
    assert set(document["rms_log2_error"]) == {"linear", "sqrt", "fit", "noise", "surge"}
    assert set(document["measured"]) == {"8", "32", "128"}
    code, out, _ = run(["scale", "--compare", "--store", "s.sqlite"], capsys)
    assert code == 0 and "fitted to the sweep (no measurement given)" in out
    code, _, err = run(["scale", "--compare"], capsys)
    assert code == 2 and "--compare needs --store" in err
    code, _, err = run(["scale", "--to", "64"], capsys)
    assert code == 2 and "--lr, --batch-size needed" in err
