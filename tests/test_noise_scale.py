"""The gradient noise scale: both estimators against the closed form of least-squares linear
regression, the jackknife, the meter's hands-off measurement, the tracker and `lrkit noise`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from cli_run import run
from lrkit.data.tensors import TensorData
from lrkit.noise.estimators import (
    NoiseMeter,
    choose_estimator,
    per_example_estimate,
    ratio_with_jackknife,
    two_batch_estimate,
)
from lrkit.noise.tracking import NoiseSettings, RunNames, track_noise_scale
from lrkit.training.loop import TrialPlan, train_trial


def regression(d: int, sigma: float, offset: float, n: int = 200_000, seed: int = 1):  # type: ignore[no-untyped-def]
    """x ~ N(0, I_d), y = x.w* + sigma eps; a linear model at w* + delta, |delta| = offset;
    loss 0.5 (x.w - y)^2. Then |G|^2 = |delta|^2 and
    tr(Sigma) = d (|delta|^2 + sigma^2) + |delta|^2."""
    g = torch.Generator().manual_seed(seed)
    w_star = torch.randn(d, generator=g)
    delta = torch.randn(d, generator=g)
    delta = delta / delta.norm() * offset
    x = torch.randn(n, d, generator=g)
    y = x @ w_star + sigma * torch.randn(n, generator=g)
    model = nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_((w_star + delta).unsqueeze(0))
    exact = (d * (offset**2 + sigma**2) + offset**2) / offset**2
    return model, x, y, exact


def half_squared_error(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out.squeeze(-1) - target) ** 2).mean()


def draw(
    x: torch.Tensor, y: torch.Tensor, size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.randint(len(x), (size,), generator=torch.Generator().manual_seed(seed))
    return x[index], y[index]


CASES = [(20, 0.5, 1.0), (10, 1.0, 0.5), (50, 0.2, 2.0)]


@pytest.mark.parametrize(("d", "sigma", "offset"), CASES)
def test_per_example_estimate_within_10_percent_of_the_closed_form(
    d: int, sigma: float, offset: float
) -> None:
    model, x, y, exact = regression(d, sigma, offset)
    with_full = per_example_estimate(model, half_squared_error, draw(x, y, 4096, 2), (x, y))
    sample_only = per_example_estimate(model, half_squared_error, draw(x, y, 8192, 3))
    for found in (with_full, sample_only):
        assert found.estimator == "per-example"
        assert found.b_simple == pytest.approx(exact, rel=0.10)
        assert found.grad_norm_sq == pytest.approx(offset**2, rel=0.15)
        assert found.trace_sigma == pytest.approx(d * (offset**2 + sigma**2) + offset**2, rel=0.10)
        assert 0 < found.b_simple_stderr < 0.1 * exact


@pytest.mark.parametrize(("d", "sigma", "offset"), CASES)
def test_two_batch_estimate_within_10_percent_of_the_closed_form(
    d: int, sigma: float, offset: float
) -> None:
    model, x, y, exact = regression(d, sigma, offset)
    groups = [[draw(x, y, 16, 100 * j + i) for i in range(8)] for j in range(96)]
    found = two_batch_estimate(model, half_squared_error, groups)
    assert found.estimator == "two-batch" and found.examples == 96 * 128
    assert found.b_simple == pytest.approx(exact, rel=0.10)


def test_the_jackknife_by_hand() -> None:
    traces, norms = [2.0, 4.0, 6.0], [1.0, 1.0, 2.0]
    ratio, stderr = ratio_with_jackknife(traces, norms)
    assert ratio == pytest.approx(12.0 / 4.0)
    leave_out = [10.0 / 3.0, 8.0 / 3.0, 6.0 / 2.0]
    mean = sum(leave_out) / 3
    assert stderr == pytest.approx(math.sqrt(2 / 3 * sum((r - mean) ** 2 for r in leave_out)))
    assert math.isnan(ratio_with_jackknife([1.0], [1.0])[1])
    assert ratio_with_jackknife([1.0, 1.0], [-1.0, 0.5])[0] == math.inf


def test_the_meter_leaves_the_model_and_training_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(500, 6), torch.randint(0, 3, (500,))
    rng = torch.get_rng_state()
    for estimator in ("per-example", "two-batch"):
        meter = NoiseMeter(x, y, estimator, 8, 4)
        found, smoothed = meter.measure(model, nn.CrossEntropyLoss())
        assert math.isfinite(found.trace_sigma) and found.trace_sigma > 0
        assert smoothed == pytest.approx(found.trace_sigma / found.grad_norm_sq)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())


def test_the_estimator_choice() -> None:
    small = nn.Sequential(nn.Linear(10, 4))
    assert choose_estimator(small, "auto") == "per-example"
    assert (
        choose_estimator(nn.Sequential(nn.Linear(10, 4), nn.BatchNorm1d(4)), "auto") == "two-batch"
    )
    assert choose_estimator(nn.Linear(4096, 4096), "auto") == "two-batch"  # 64 x 16.8M floats
    assert choose_estimator(small, "two-batch") == "two-batch"


def test_tracking_measures_at_every_check() -> None:
    x = torch.randn(1200, 6, generator=torch.Generator().manual_seed(5))
    data = TensorData(x, (x[:, 0] + x[:, 1] > 0).long())
    train, val = data.split(1 / 6)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    settings = NoiseSettings(lr=0.2, batch_size=10, epochs=1.0, measure_every=0.25, examples=200)
    result = track_noise_scale(
        model,
        torch.optim.SGD(model.parameters(), lr=0.2),
        nn.CrossEntropyLoss(),
        train,
        val,
        settings,
        RunNames("tiny", "synthetic"),
    )
    assert [p.epoch for p in result.points] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # the measurements did not change the training: the same weights as a run without them
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    train_trial(
        plain,
        torch.optim.SGD(plain.parameters(), lr=0.2),
        nn.CrossEntropyLoss(),
        train,
        val,
        None,
        TrialPlan(0.2, 10, 1.0, 0.25, 0),
    )
    assert all(
        torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters(), strict=True)
    )
    assert result.estimator == "per-example" and result.examples_per_measurement == 200
    assert result.critical_batch_size == result.points[-1].b_simple_smoothed
    document = result.to_json()
    assert set(document) >= {"model", "batch_size", "points", "critical_batch_size"}
    assert set(document["points"][0]) >= {
        "iteration",
        "epoch",
        "b_simple",
        "b_simple_stderr",
        "grad_norm_sq",
        "trace_sigma",
    }


def test_cli_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    code, out, err = run(
        [
            "noise",
            "--epochs",
            "0.5",
            "--measure-every",
            "0.25",
            "--examples",
            "256",
            "--json",
            "n.json",
            "--plot",
            "n.png",
        ],
        capsys,
    )
    assert code == 0, err
    assert "B_simple at the start / middle / end of training" in out
    assert "critical batch size ~ " in out
    document = json.loads((tmp_path / "n.json").read_text())
    assert document["model"] == "mnist-mlp" and document["batch_size"] == 16
    assert len(document["points"]) == 3 and document["critical_batch_size"] > 0
    assert (tmp_path / "n.png").stat().st_size > 10_000
    for args, message in (
        (["--batch-size", "1"], "--batch-size must be an integer >= 2"),
        (["--estimator", "exact"], "--estimator must be one of auto, per-example, two-batch"),
        (["--epochs", "0"], "--epochs must be a number in (0, 1e+09]"),
    ):
        code, out, err = run(["noise", *args], capsys)
        assert code == 2 and out == "" and message in err
        assert len(err.strip().splitlines()) == 1
