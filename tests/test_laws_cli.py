"""``lrkit laws`` end to end on a toy family: the ladder, the law, the prediction and the
checks as JSON, consistent with the library; resumed from its store; bad input exits 2."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from cli_run import run
from lrkit.laws import fit_law

FAMILY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def mlp(width):
        return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, 2))

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1200, 8, generator=g)
        y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).long()
        return {"train": (x[:1000], y[:1000]), "val": (x[1000:], y[1000:])}

    def not_a_model(width):
        return width
    """
)
LADDER = ["laws", "--model", "lawmodels:mlp", "--data", "lawmodels:make_data"]
SMALL = ["--batch-size", "32", "--epochs", "1", "--octaves", "1", "--per-octave", "2"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "lawmodels.py").write_text(FAMILY)
    return tmp_path


@pytest.mark.slow  # two ladders of 20 short runs and a coordinate check: in make test
def test_a_ladder_predicts_checks_and_resumes(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*LADDER, "--widths", "8,16,32,64", "--predict-width", "256", *SMALL]
    code, out, err = run([*args, "--json", "a.json", "--check-transfer"], capsys)
    assert code == 0, err
    found = json.loads((workdir / "a.json").read_text())
    assert [r["width"] for r in found["rungs"]] == [8, 16, 32, 64]
    groups = {(float(r["width"]),): [tuple(x) for x in r["runs"]] for r in found["rungs"]}
    for rung in found["rungs"]:
        optimum = rung["optimum"]
        assert len(rung["runs"]) >= 5 and optimum["low"] <= optimum["lr"] <= optimum["high"]
        assert {optimum["low"], optimum["high"]} <= set(rung["lrs"])
    # The fit is the library's on the runs the JSON lists.
    again = fit_law(groups, ["width"])
    assert found["transfer"]["exponent"] == pytest.approx(again.exponents[0])
    predict = found["predict"]
    assert predict["width"] == 256
    low, high = predict["lr_interval"]
    assert low <= predict["lr"] <= high and math.isfinite(predict["lr"])
    assert found["transfer"]["moves"] == (not low_high_holds_zero(found["transfer"]["interval"]))
    assert {layer["layer"] for layer in found["coordinate_check"]["layers"]} == {"0", "2"}
    assert (
        "eta*(width) (muP's question; predicts): eta* =" in out
        and "check: width 64 predicted from the others" in out
    )
    assert "predicted best lr at width 256" in out and "coordinate check" in out
    # Resumed from the store: nothing trains again, the same answer.
    code, out, err = run([*args, "--json", "b.json", "--lr", str(found["center_lr"])], capsys)
    assert code == 0, err
    resumed = json.loads((workdir / "b.json").read_text())
    assert resumed["rungs"] == found["rungs"] and resumed["predict"] == found["predict"]


def low_high_holds_zero(interval: list[float]) -> bool:
    return interval[0] <= 0.0 <= interval[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--widths", "8,16,32"], "--widths: eta*(width) needs at least 4 groups of runs"),
        (["--widths", "8,x,32,64"], "--widths must be an integer > 0"),
        (["--widths", "8,16,32,64", "--depths", "1,2"], "give the ladder's sizes as --widths"),
        (["--widths", "8,16", "--epochs", "1,2"], "eta*(N, D) needs at least 5 groups"),
        (["--widths", "8", "--epochs", "1,2", "--examples", "100,200"], "ladder one of them"),
        (["--widths", "8,16,32,64", "--examples", "5000"], "--examples must be at most"),
        (["--depths", "1,2,3,4", "--check-transfer"], "the coordinate check needs a --widths"),
        (["--depths", "1,2,3,4", "--predict-width", "8"], "give --predict-depth"),
        (["--widths", "8,16,32,64", "--repeats", "0"], "--repeats must be"),
        (["--widths", "8,16,32,64", "--predict-width", "0"], "--predict-width must be"),
        (["--widths", "8,16,32,64", "--optimizer", "lion"], "--optimizer must be one of"),
        (["--widths", "8,16,32,64", "--engine", "gpu"], "--engine must be one of"),
        (["--widths", "8,16,32,64", "--batch-size", "5000"], "--batch-size must be at most"),
    ],
)
def test_bad_input_exits_2_in_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, _, err = run([*LADDER, *extra], capsys)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_a_factory_that_returns_no_model_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["laws", "--model", "lawmodels:not_a_model", "--data", "lawmodels:make_data"]
    code, _, err = run([*args, "--widths", "8,16,32,64", "--lr", "0.1", *SMALL], capsys)
    assert code == 2 and "returned int at width 8, not an nn.Module" in err


@pytest.mark.slow  # 6 points of 5 short runs, then 4 points: in make test
def test_ladders_of_sizes_and_horizons_and_of_batch_sizes(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = ["--octaves", "1", "--per-octave", "2", "--lr", "0.02"]
    args = [*LADDER, "--widths", "8,16,32", "--epochs", "0.5,1", "--batch-size", "32", *small]
    args += ["--predict-width", "64", "--predict-epochs", "2", "--json", "nd.json"]
    code, out, err = run([*args, "--plot", "nd.png", "--report", "nd.html"], capsys)
    assert code == 0, err
    found = json.loads((workdir / "nd.json").read_text())
    assert found["varies"] == ["width", "epochs"]
    assert [law["name"] for law in found["laws"]] == ["eta*(N, D)", "eta*(C)"]
    step = found["laws"][0]
    groups = {
        (float(g["parameters"]), g["examples"] * g["epochs"]): (g["optimum"]["lr"],)
        for g in found["groups"]
    }
    assert len(groups) == 6
    # Step Law's fit is the library's on the groups' optima the JSON lists.
    from lrkit.laws.optimum import Optimum

    again = fit_law(
        {k: Optimum(v[0], v[0], v[0], 1.0, 1, False, 0.35) for k, v in groups.items()},
        ["N", "D"],
    )
    assert step["fit"]["exponents"] == pytest.approx(list(again.exponents))
    # The held-out group is the largest: width 32 (its N) at 1 epoch of 1000 examples.
    assert step["check"]["values"] == [float(8 * 32 + 32 + 32 * 2 + 2), 1000.0]
    predict = found["predict"]
    assert predict["width"] == 64 and predict["epochs"] == 2.0 and predict["examples"] == 1000
    assert predict["parameters"] == 8 * 64 + 64 + 64 * 2 + 2
    assert predict["law"] in {"eta*(N, D)", "eta*(C)"} and predict["at_batch_size"] == 32
    assert predict["lr_interval"][0] <= predict["lr"] <= predict["lr_interval"][1]
    assert "eta*(N, D) (Step Law" in out and "predicted best lr at width 64" in out
    # The figure and the report: both laws, their checks, the forecast.
    assert (workdir / "nd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (workdir / "nd.html").read_text()
    assert "eta*(N, D)" in page and "eta*(C)" in page and "data:image/svg+xml;base64," in page
    verdict = "within" if step["check"]["within"] else "OUTSIDE"
    assert verdict in page

    args = [*LADDER, "--widths", "8", "--batch-size", "16,32,64,128", "--epochs", "1", *small]
    code, out, err = run([*args, "--predict-batch-size", "256", "--json", "b.json"], capsys)
    assert code == 0, err
    found = json.loads((workdir / "b.json").read_text())
    assert [law["name"] for law in found["laws"]] == ["eta*(B)"]
    assert found["predict"]["at_batch_size"] == 256 and "transfer" not in found
    (group,) = found["groups"]
    best = group["batch_size"]
    assert 16 <= best["low"] <= best["batch_size"] <= best["high"] <= 128


@pytest.mark.slow  # two horizon ladders of 4 x 5 short runs: in make test
def test_a_branched_horizon_ladder_equals_training_each_horizon(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--epochs 0.5,1,2,4 with a WSD schedule: branched off one run per lr (the default) the
    stored runs are the ones training every horizon from scratch gives (--no-branch), and
    eta*(D) is fitted to them."""
    args = [*LADDER, "--widths", "8", "--epochs", "0.5,1,2,4", "--batch-size", "32"]
    args += ["--octaves", "1", "--per-octave", "2", "--lr", "0.02"]
    args += ["--schedule", "wsd:cooldown_fraction=0.25", "--predict-epochs", "8"]
    code, out, err = run([*args, "--json", "branched.json", "--store", "a.sqlite"], capsys)
    assert code == 0, err
    code, _, err = run(
        [*args, "--no-branch", "--json", "scratch.json", "--store", "b.sqlite"], capsys
    )
    assert code == 0, err
    branched = json.loads((workdir / "branched.json").read_text())
    scratch = json.loads((workdir / "scratch.json").read_text())
    assert [r["runs"] for r in branched["rungs"]] == [r["runs"] for r in scratch["rungs"]]
    assert [law["name"] for law in branched["laws"]] == ["eta*(D)"]
    assert branched["predict"]["epochs"] == 8.0 and "eta*(D) (Bjorck" in out
