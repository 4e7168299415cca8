"""`lrkit advise`: its candidates, its forecasts, its plan, the race through the engines (budget
accounting, stacked equals sequential, deterministic), the CLI and its bad inputs."""

from __future__ import annotations

import itertools
import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from cli_run import run
from lrkit.advise import AdviseSettings, advise
from lrkit.advise.candidates import LADDER, MERGE_RATIO, candidate_lrs
from lrkit.advise.plan import race_plan, trial_epochs
from lrkit.advise.predict import fit_power_law, forecast
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError

# candidates


def test_the_ladder_surrounds_the_default_and_every_rule_joins_it() -> None:
    found = candidate_lrs(
        {"turning_point": 0.4, "valley": 0.03, "steepest": 0.41, "minimum": 0.002}, limit=16
    )
    lrs = [c.lr for c in found]
    assert lrs == sorted(lrs)
    assert pytest.approx(lrs) == [0.002, 0.03, 0.05, 0.1, 0.2, 0.4, 0.8]
    by_lr = {round(c.lr, 6): c.sources for c in found}
    assert by_lr[0.4] == ("turning_point", "steepest")  # within MERGE_RATIO: one candidate
    assert by_lr[0.8] == ("ladder x2",)


def test_the_limit_keeps_the_centre_the_rules_then_the_nearest_rungs() -> None:
    found = candidate_lrs(
        {"turning_point": 1.0, "valley": 0.01, "steepest": None, "minimum": 0.001}, limit=4
    )
    assert [c.sources[0] for c in found] == ["minimum", "valley", "ladder x0.5", "turning_point"]


def test_without_the_default_the_next_rule_is_the_centre() -> None:
    found = candidate_lrs({"turning_point": None, "valley": 0.1, "steepest": 0.5}, limit=16)
    assert "valley" in [s for c in found for s in c.sources]
    assert pytest.approx(sorted(c.lr for c in found)) == [0.0125, 0.025, 0.05, 0.1, 0.2, 0.5]
    with pytest.raises(LrkitValueError, match="suggests no learning rate"):
        candidate_lrs({"turning_point": None, "valley": None})


@given(
    suggestions=st.dictionaries(
        st.sampled_from(["turning_point", "valley", "steepest", "minimum"]),
        st.one_of(st.none(), st.floats(1e-6, 10.0)),
    ).filter(lambda d: any(v is not None for v in d.values())),
    limit=st.integers(2, 16),
)
def test_candidates_are_apart_within_the_limit_and_hold_the_centre(
    suggestions: dict[str, float | None], limit: int
) -> None:
    found = candidate_lrs(suggestions, limit=limit)
    lrs = [c.lr for c in found]
    assert 1 <= len(found) <= limit
    assert all(b / a >= MERGE_RATIO for a, b in itertools.pairwise(lrs))
    given_lrs = [v for v in suggestions.values() if v is not None]
    centre = suggestions.get("turning_point") or next(
        suggestions[r]
        for r in ("turning_point", "valley", "steepest", "minimum")
        if suggestions.get(r) is not None
    )
    assert any(math.isclose(c.lr, centre) for c in found)
    assert all(lr >= min([*given_lrs, centre * min(LADDER)]) * (1 - 1e-12) for lr in lrs)


# forecasts


@pytest.mark.parametrize(("a", "b", "c"), [(0.02, 0.3, 0.7), (0.0, 0.5, 0.3), (0.1, 1.0, 1.5)])
def test_a_power_law_curve_is_forecast_where_it_goes(a: float, b: float, c: float) -> None:
    t = np.linspace(0.25, 5.0, 12)
    error = a + b * t ** (-c)
    fitted = fit_power_law(t, error)
    assert fitted[3] < 1e-6  # the curve is one of the model's
    found = forecast(t, 1 - error, 30.0, "accuracy")
    assert found.value == pytest.approx(1 - (a + b * 30.0 ** (-c)), abs=2e-3)
    assert not found.rising


def test_a_loss_that_turned_upwards_is_forecast_to_go_on_rising() -> None:
    t = np.arange(1, 13) / 2
    loss = np.array([1.0, 0.8, 0.7, 0.65, 0.64, 0.66, 0.7, 0.74, 0.78, 0.82, 0.86, 0.9])
    found = forecast(t, loss, 20.0, "loss")
    assert found.rising and found.value > loss[-1]


def test_a_forecast_needs_a_few_finite_checks() -> None:
    assert forecast([0.5, 1.0], [0.4, 0.5], 10, "accuracy").value == 0.5
    assert math.isnan(forecast([0.5, 1.0], [math.nan, 0.5], 10, "loss").value)
    # a curve that stops being finite is read up to there
    found = forecast([1, 2, 3, 4, 5], [0.9, 0.7, 0.6, math.inf, 0.1], 5, "loss")
    assert found == forecast([1, 2, 3], [0.9, 0.7, 0.6], 5, "loss")
    # at (or before) the last check, the forecast is the measured value
    assert forecast([1, 2, 3, 4], [0.5, 0.6, 0.7, 0.72], 4, "accuracy").value == 0.72


# plan


def test_the_plan_halves_then_keeps_the_finalists_and_costs_its_closed_form() -> None:
    plan = race_plan(30.0, 6, 2)
    assert [(r.epochs, r.keep) for r in plan] == [(5.0, 3), (15.0, 2), (30.0, 0)]
    assert trial_epochs(plan, 6) == pytest.approx(6 * 5 + 3 * 10 + 2 * 15)  # 3 budgets
    one = race_plan(30.0, 6, 1)
    assert trial_epochs(one, 6) == pytest.approx(6 * 5 + 3 * 10 + 1 * 15)  # 2.5 budgets
    assert [(r.epochs, r.keep) for r in race_plan(12.0, 2, 2)] == [(12.0, 0)]
    assert [(r.epochs, r.keep) for r in race_plan(12.0, 3, 2)] == [(2.0, 2), (12.0, 0)]


@given(st.integers(1, 16), st.integers(1, 3), st.floats(0.5, 100))
def test_every_plan_ends_at_the_budget_and_trains_between_one_and_n_budgets(
    n: int, finalists: int, epochs: float
) -> None:
    plan = race_plan(epochs, n, finalists)
    assert plan[-1].epochs == epochs and plan[-1].keep == 0
    assert all(a.epochs < b.epochs and a.keep > b.keep for a, b in itertools.pairwise(plan))
    assert epochs * min(n, finalists) - 1e-9 <= trial_epochs(plan, n) <= n * epochs + 1e-9


# the race, on a small problem


def problem() -> tuple[TensorData, TensorData]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(900, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long()
    return TensorData(x[:700], y[:700]), TensorData(x[700:], y[700:])


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))


def settings(**changes: object) -> AdviseSettings:
    base = {"epochs": 3.0, "batch_size": 32, "workers": 1, "candidates": 6}
    return AdviseSettings(**{**base, **changes})  # type: ignore[arg-type]


def test_the_race_trains_its_plan_and_advises_a_finalist() -> None:
    train, val = problem()
    found = advise(make_model, train, val, settings(engine="sequential"))
    plan = race_plan(3.0, len(found.candidates), 1)
    assert found.trial_epochs == pytest.approx(trial_epochs(plan, len(found.candidates)))
    # Every candidate stopped at a rung's end, as many at each as the plan keeps, and the
    # epochs they trained add up to the plan's cost (each goes on from its checkpoint).
    assert all(c.status == "done" for c in found.candidates)
    ends = [c.epochs_run for c in found.candidates]
    alive = len(found.candidates)
    for rung in plan:
        assert sum(e >= rung.epochs - 1e-9 for e in ends) == alive
        alive = rung.keep
    assert sum(ends) == pytest.approx(found.trial_epochs)
    chosen = next(c for c in found.candidates if c.lr == found.lr)
    assert chosen.epochs_run == 3.0 and chosen.value == found.value
    assert found.metric == "accuracy" and 0.5 < found.value <= 1.0
    assert found.runner_up is not None and found.runner_up != found.lr
    assert json.loads(json.dumps(found.to_json()))["candidates"][0]["batch_size"] == 32


def test_a_stacked_race_equals_the_sequential_one() -> None:
    train, val = problem()
    # (both race two finalists: the vectorized engine always, the plain loop with 2 workers)
    seq = advise(
        make_model, train, val, settings(engine="sequential", optimizer="momentum", workers=2)
    )
    vec = advise(make_model, train, val, settings(engine="vectorized", optimizer="momentum"))
    assert vec.engine == "vectorized" and seq.engine == "sequential"
    assert vec.lr == seq.lr
    assert [c.lr for c in vec.candidates] == [c.lr for c in seq.candidates]
    for a, b in zip(vec.candidates, seq.candidates, strict=True):
        assert a.epochs_run == b.epochs_run
        assert a.value == pytest.approx(b.value, abs=1e-6)


def test_the_same_seed_gives_the_same_advice_in_one_process_or_two() -> None:
    train, val = problem()
    one = advise(make_model, train, val, settings(engine="sequential", optimizer="adam"))
    again = advise(make_model, train, val, settings(engine="sequential", optimizer="adam"))
    assert one.lr == again.lr
    assert [c.value for c in one.candidates] == [c.value for c in again.candidates]
    # Two worker processes race two finalists: the trials that ran as far give the same values.
    two = advise(make_model, train, val, settings(engine="sequential", optimizer="adam", workers=2))
    same = [
        (a.value, b.value)
        for a, b in zip(one.candidates, two.candidates, strict=True)
        if a.epochs_run == b.epochs_run
    ]
    assert len(same) >= len(one.candidates) - 1
    assert all(a == b for a, b in same)


def test_a_regression_is_judged_by_its_loss_and_cannot_be_judged_by_accuracy() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(600, 1, generator=g) * 4 - 2
    data = TensorData(x, torch.sin(2 * x))
    train, val = data.split(1 / 6)

    def tiny(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(1, 8), nn.Sigmoid(), nn.Linear(8, 1))

    found = advise(tiny, train, val, settings(engine="sequential"), loss_fn=nn.MSELoss())
    assert found.metric == "loss"
    assert found.value == min(c.value for c in found.candidates if c.epochs_run == 3.0)
    with pytest.raises(LrkitValueError, match="metric accuracy needs integer class labels"):
        advise(tiny, train, val, settings(metric="accuracy"), loss_fn=nn.MSELoss())


def test_a_model_that_cannot_be_copied_is_refused() -> None:
    train, val = problem()

    class Stubborn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(8, 2)

        def __deepcopy__(self, memo: object) -> Stubborn:
            raise TypeError("no copies")

    with pytest.raises(LrkitValueError, match=r"cannot be copied .*give a factory"):
        advise(Stubborn(), train, val, settings())


# the CLI

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(1, 8), nn.Sigmoid(), nn.Linear(8, 1))

    def make_data():
        g = torch.Generator().manual_seed(1)
        x = torch.rand(600, 1, generator=g) * 4 - 2
        return x, torch.sin(2 * x)
    """
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    (tmp_path / "advisemodels.py").write_text(USER_MODULE)
    return tmp_path


def test_cli_advise_writes_the_advice_its_figure_and_report(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["advise", "--epochs", "1", "--batch-size", "32", "--workers", "1"]
    out_files = ["--json", "a.json", "--plot", "a.png", "--report", "a.html"]
    code, out, err = run([*args, *out_files], capsys)
    assert code == 0, err
    assert "advised learning rate:" in out and "<- advised" in out
    document = json.loads((workdir / "a.json").read_text())
    assert set(document) >= {"lr", "batch_size", "metric", "candidates", "seconds"}
    assert document["batch_size"] == 32 and document["metric"] == "accuracy"
    for candidate in document["candidates"]:
        assert set(candidate) >= {"lr", "batch_size", "value", "value_std", "epochs_run"}
    assert document["lr"] in [c["lr"] for c in document["candidates"]]
    assert (workdir / "a.png").stat().st_size > 0
    assert "Advice (this run)" in (workdir / "a.html").read_text()


def test_cli_advise_on_a_users_regression_judges_the_loss(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = ["--model", "advisemodels:make_model", "--data", "advisemodels:make_data"]
    args = ["advise", *user, "--loss", "torch.nn:MSELoss", "--epochs", "2", "--batch-size", "16"]
    code, _, err = run([*args, "--optimizer", "adamw", "--json", "a.json"], capsys)
    assert code == 0, err
    assert json.loads((workdir / "a.json").read_text())["metric"] == "loss"
    assert "one trial a process" in err  # adamw does not stack


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be a number in (0, 100000], got 0.0"),
        (["--epochs", "-3"], "--epochs must be a number in (0, 100000]"),
        (["--candidates", "1"], "--candidates must be an integer in [2, 16], got 1"),
        (["--metric", "f1"], "--metric must be one of auto, accuracy, loss, got 'f1'"),
        (["--optimizer", "lion"], "--optimizer must be one of sgd, momentum, adam, adamw"),
        (["--batch-size", "100000"], "--batch-size must be at most the number of training"),
        (["--engine", "fast"], "--engine must be one of auto, sequential, vectorized, ray"),
        (["--json", "file.txt/a.json"], "--json file.txt/a.json: file.txt is a file"),
        (
            [
                "--model",
                "advisemodels:make_model",
                "--data",
                "advisemodels:make_data",
                "--loss",
                "torch.nn:MSELoss",
                "--metric",
                "accuracy",
            ],
            "--metric accuracy needs integer class labels and a (batch, classes) output, "
            "got float targets: use --metric loss",
        ),
    ],
)
def test_cli_advise_bad_input_exits_2_in_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (workdir / "file.txt").write_text("in the way")
    code, out, err = run(["advise", "--epochs", "1", *args], capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and out == "", err
    assert len(errors) == 1 and "Traceback" not in err
    assert message in errors[0]
