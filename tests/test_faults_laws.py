"""``lrkit laws`` under bad input and faults: every input at fault exits 2 with one short line
naming the option, before any training (the range test included) and leaving nothing behind;
a forecast far outside the ladder is warned in the table, the JSON and the report, its N
counted without building the model; no interval is of zero width."""

from __future__ import annotations

import json
import math
import sys
import textwrap
import time
from pathlib import Path

import pytest
from torch import nn

from cli_run import run
from lrkit.errors import LrkitValueError
from lrkit.sweep.definition import SweepDefinition
from lrkit.sweep.store import Store
from lrkit.workload import MESSAGE_LIMIT, built_model

FAULTS = textwrap.dedent(
    """
    import torch
    from torch import nn

    built = []

    def mlp(width):
        model = nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, 2))
        built.append((width, model[0].weight.device.type))
        return model

    def fixed(width):
        return mlp(16)

    def clamped(width):
        return mlp(min(width, 16))

    class Constant(nn.Module):
        def forward(self, x):
            return x[:, :2] * 1.0

    def no_parameters(width):
        return Constant()

    def frozen(width):
        return mlp(width).requires_grad_(False)

    def overflowing(width):
        return mlp(width if width < 64 else 2**70)

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1200, 8, generator=g)
        y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).long()
        return {"train": (x[:1000], y[:1000]), "val": (x[1000:], y[1000:])}
    """
)
DATA = ["--data", "lawfaults:make_data"]
LAWS = ["laws", "--model", "lawfaults:mlp", *DATA]
WIDTHS = ["--widths", "8,16,32,64"]
SMALL = ["--batch-size", "32", "--epochs", "1", "--octaves", "1", "--per-octave", "1"]
BIG = "99999999999999999999"
SIZE = "must be an integer in [1, 10000000] (a model's width or depth), got "


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user module in a fresh folder (imported anew), a file and a folder in the way of
    the store, and a store whose sweep ``laws-width-8`` was trained another way."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lawfaults", raising=False)
    (tmp_path / "lawfaults.py").write_text(FAULTS)
    (tmp_path / "file.txt").write_text("in the way")
    (tmp_path / "adir").mkdir()
    other = SweepDefinition(
        "lawfaults:mlp@8", "lawfaults:make_data", "cross_entropy", 3.0, 0.75, 1 / 12,
        "adam", 0.9, 0.0, None, None, 0,
    )  # fmt: skip
    with Store.open(tmp_path / "other.sqlite") as store:
        store.sweep("laws-width-8", other)
    return tmp_path


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """The range test and the ladder fail the test if they start: a refusal comes first."""

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started before the input was refused")

    monkeypatch.setattr("lrkit.laws.driver.range_test_center", started)
    monkeypatch.setattr("lrkit.laws.driver.run_ladder", started)


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def the_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def model(name: str) -> list[str]:
    return ["laws", "--model", f"lawfaults:{name}", *DATA]


BAD_INPUT = [
    # lists and sizes
    ([*LAWS, "--widths", "8,,16,32"], "--widths '8,,16,32' has an empty value between commas"),
    ([*LAWS, "--widths", "8,16,32,"], "--widths '8,16,32,' has an empty value between commas"),
    ([*LAWS, "--widths", f"8,16,32,{BIG}"], f"--widths {SIZE}{BIG}"),
    ([*LAWS, "--depths", f"1,2,3,{BIG}"], f"--depths {SIZE}{BIG}"),
    ([*LAWS, *WIDTHS, "--predict-width", BIG], f"--predict-width {SIZE}{BIG}"),
    ([*LAWS, *WIDTHS, "--predict-width", "0"], f"--predict-width {SIZE}0"),
    (
        [*LAWS, *WIDTHS, "--predict-examples", BIG],
        "--predict-examples must be an integer in [1, 10000000000000] (training examples)",
    ),
    ([*LAWS, *WIDTHS, "--predict-epochs", "1e9"], "--predict-epochs must be a number in (0, "),
    ([*LAWS, *WIDTHS, "--predict-epochs", "inf"], "--predict-epochs must be a number in (0, "),
    (
        [*LAWS, *WIDTHS, "--predict-batch-size", BIG],
        "--predict-batch-size must be an integer in [1, 1048576], got " + BIG,
    ),
    # the grid of each point
    ([*LAWS, *WIDTHS, "--octaves", "100000"], "--octaves must be an integer in [1, 10]"),
    ([*LAWS, *WIDTHS, "--per-octave", "1000"], "--per-octave must be an integer in [1, 16]"),
    (
        [*LAWS, *WIDTHS, "--repeats", "10000"],
        "the grid has 250000 trials (25 lrs of a widened grid x 10000 --repeats); a sweep runs "
        "at most 100000",
    ),
    ([*LAWS, *WIDTHS, "--workers", "99"], "--workers must be an integer in [1, "),
    (
        [*LAWS, *WIDTHS, "--engine", "sequential", "--address", "ray://head:10001"],
        "--address belongs to --engine ray",
    ),
    # the store, checked and opened before the range test
    ([*LAWS, *WIDTHS, "--store", "file.txt/x.sqlite"], "--store file.txt/x.sqlite: file.txt is"),
    ([*LAWS, *WIDTHS, "--store", "adir"], "--store adir is a folder"),
    (
        [*LAWS, *WIDTHS, "--store", "other.sqlite"],
        "store other.sqlite already holds sweep 'laws-width-8' with another definition (",
    ),
    ([*LAWS, *WIDTHS, "--store", "/dev/null"], "--store /dev/null is a character device"),
    # the model family, counted before any training
    ([*model("no_parameters"), *WIDTHS], "--model 'lawfaults:no_parameters' has no trainable"),
    ([*model("frozen"), *WIDTHS], "--model 'lawfaults:frozen' has no trainable parameters at"),
    (
        [*model("fixed"), *WIDTHS],
        "--model 'lawfaults:fixed' builds the same model (N = 178) at widths 8, 16, 32, 64: its "
        "factory must build the model at the width it is given",
    ),
    ([*model("clamped"), *WIDTHS], "builds the same model (N = 178) at widths 16, 32, 64"),
    (
        [*model("overflowing"), *WIDTHS],
        "--model 'lawfaults:overflowing' failed at width 64: TypeError: empty(): argument 'size'",
    ),
    # where the law can predict
    (
        [*LAWS, *WIDTHS, "--batch-size", "16,32", "--predict-batch-size", "64"],
        "--predict-batch-size 64: a ladder of widths and batch sizes predicts the best lr at the "
        "best batch size",
    ),
    (
        [*LAWS, *WIDTHS, "--batch-size", "32", "--predict-batch-size", "64"],
        "--predict-batch-size 64: the ladder trains at batch size 32 only",
    ),
]


@pytest.mark.usefixtures("no_training")
@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_input_at_fault_exits_2_in_one_line_before_any_training(
    workdir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = listing(workdir)
    started = time.perf_counter()
    code, out, err = run(args, capsys)
    assert code == 2, err
    line = the_line(err)
    assert line.startswith("lrkit laws: error: ") and message in line
    assert len(line) < 400 and "frame #" not in line
    assert out == "" and listing(workdir) == before
    assert time.perf_counter() - started < 30


@pytest.mark.slow  # four widths of three to five short runs: in make test
def test_a_forecast_far_out_is_warned_and_never_built(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*LAWS, *WIDTHS, *SMALL, "--lr", "0.1", "--predict-width", "1500000"]
    code, out, err = run([*args, "--json", "a.json", "--report", "a.html"], capsys)
    assert code == 0, err
    import lawfaults

    assert (1500000, "cpu") not in lawfaults.built and (1500000, "meta") in lawfaults.built
    far = "width 1.5e+06 lies far outside the fitted 8 .. 64"
    assert f"warning: {far}" in out
    found = json.loads((workdir / "a.json").read_text())
    predict = found["predict"]
    assert predict["parameters"] == 11 * 1500000 + 2 and predict["parameters_extrapolated"] is None
    assert any(far in w for w in predict["warnings"])
    assert f"Warning: {far}" in (workdir / "a.html").read_text()
    # No interval is of zero width, whatever the optima.
    ((low, high),) = found["fit"]["exponent_intervals"]
    assert low < found["fit"]["exponents"][0] < high
    assert predict["lr_interval"][0] < predict["lr"] < predict["lr_interval"][1]
    measured = found["check"]["prediction"]["measured_interval"]
    assert measured[1] / measured[0] > math.exp(2 * 1.645 * math.log(2) / math.sqrt(24))
    for rung in found["rungs"]:
        assert rung["optimum"]["spacing"] == pytest.approx(math.log(2))


def test_a_factorys_exception_is_one_short_line() -> None:
    """PyTorch's C++ stack (1.5 KB of frames after an overflow) is dropped, and any message is
    cut to ``MESSAGE_LIMIT`` characters."""

    def overflowing() -> nn.Module:
        return nn.Linear(8, 2**70)

    def verbose() -> nn.Module:
        raise ValueError("why " * 1000)

    with pytest.raises(LrkitValueError) as overflow:
        built_model(overflowing, "m:f")
    said = str(overflow.value)
    assert said.startswith("--model 'm:f' failed: TypeError: empty(): argument 'size' failed")
    assert "Overflow when unpacking long" in said
    assert "frame #" not in said and "Exception raised from" not in said and "\n" not in said
    with pytest.raises(LrkitValueError) as long:
        built_model(verbose, "m:f")
    assert str(long.value).endswith("...")
    assert len(str(long.value)) <= len("--model 'm:f' failed: ") + MESSAGE_LIMIT
