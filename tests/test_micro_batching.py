"""The memory batch and the optimization batch: gradient accumulation trains the step of the
whole batch (the step, the trial loop and the range test against the whole batch), the
micro-batches advise chooses under the largest batch that fits, and what it says of them."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from cli_run import run
from lrkit.advise.driver import advise
from lrkit.advise.micro import MicroBatching, micro_batching
from lrkit.advise.result import Advice
from lrkit.advise.settings import AdviseSettings
from lrkit.batchsize.ceiling import estimate_ceiling
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.training.loop import train_trial
from lrkit.training.records import TrialPlan
from lrkit.training.step import micro_bounds, train_step
from lrkit.training.vectorized.loop import StackedTrial, check_stack
from test_batchsize import make_model, problem

# the choice of micro-batches


@pytest.mark.parametrize(
    ("batch", "largest", "at_least", "micro", "k"),
    [
        (64, 64, 1, 64, 1),  # fits: whole
        (64, 1000, 1, 64, 1),
        (64, 62, 1, 32, 2),
        (64, 20, 1, 16, 4),
        (100, 30, 1, 25, 4),  # 3 does not divide 100
        (97, 50, 1, 1, 97),  # a prime: single examples
        (64, 1000, 4, 16, 4),  # the caller's k at least
        (12, 5, 1, 4, 3),
    ],
)
def test_the_fewest_equal_micro_batches_that_fit_by_hand(
    batch: int, largest: int, at_least: int, micro: int, k: int
) -> None:
    found = micro_batching(batch, largest, "memory", at_least)
    assert (found.micro_batch_size, found.accumulation_steps) == (micro, k)
    assert found.largest_fitting == largest and found.method == "memory"


@given(st.integers(1, 4096), st.integers(1, 5000))
def test_micro_batches_multiply_to_the_batch_fit_and_are_the_fewest(
    batch: int, largest: int
) -> None:
    found = micro_batching(batch, largest, "probe")
    m, k = found.micro_batch_size, found.accumulation_steps
    assert m * k == batch and m <= largest
    assert not any(batch % j == 0 and batch // j <= largest for j in range(1, k))


def test_not_even_one_example_is_a_one_line_error() -> None:
    with pytest.raises(LrkitValueError, match="not even one example fits in memory"):
        micro_batching(64, 0, "memory")


def test_what_advice_says_of_micro_batches() -> None:
    found = MicroBatching(512, 128, 4, 150, "probe")
    assert found.trainer_arguments() == {
        "per_device_train_batch_size": 128,
        "gradient_accumulation_steps": 4,
    }
    assert found.describe() == (
        "batch 512 trains as 4 micro-batches of 128, gradients accumulated (the same steps); "
        "the largest batch that fits: 150 (probe)"
    )
    assert found.to_json() == {
        "micro_batch_size": 128,
        "accumulation_steps": 4,
        "largest_fitting_batch": 150,
        "method": "probe",
        "hf_trainer": {"per_device_train_batch_size": 128, "gradient_accumulation_steps": 4},
    }


# accumulation trains the step of the whole batch


@pytest.mark.parametrize(("rows", "k"), [(12, 3), (10, 3), (7, 7), (5, 2)])
def test_micro_bounds_cover_the_batch_in_order_as_even_as_they_come(rows: int, k: int) -> None:
    bounds = micro_bounds(rows, k)
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1 and len(sizes) == k


@pytest.mark.parametrize(("rows", "k", "weight"), [(24, 4, 1.0), (24, 5, 1.0), (18, 3, 0.75)])
def test_a_step_in_micro_batches_is_the_step_of_the_whole_batch(
    rows: int, k: int, weight: float
) -> None:
    """Float64, so the two steps agree to round-off (uneven micro-batches included)."""
    torch.manual_seed(1)
    whole = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    parts = copy.deepcopy(whole)
    x, y = torch.randn(rows, 5, dtype=torch.float64), torch.randint(0, 3, (rows,))
    loss_fn = nn.CrossEntropyLoss()
    opt_whole = torch.optim.SGD(whole.parameters(), lr=0.3, momentum=0.9)
    opt_parts = torch.optim.SGD(parts.parameters(), lr=0.3, momentum=0.9)
    for _ in range(3):
        a = train_step(whole, opt_whole, loss_fn, x, y, weight)
        b = train_step(parts, opt_parts, loss_fn, x, y, weight, micro_batches=k)
        assert float(b.detach()) == pytest.approx(float(a.detach()), rel=1e-12)
    for p, q in zip(whole.parameters(), parts.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def test_a_trial_in_micro_batches_matches_the_whole_batch_run_to_float_tolerance() -> None:
    train, val = problem()
    plans = [
        TrialPlan(lr=0.5, batch_size=64, epochs=2, eval_every=0.5, seed=3, accumulation_steps=k)
        for k in (1, 4)
    ]
    outcomes = []
    for plan in plans:
        model = make_model(0)
        optimizer = torch.optim.SGD(model.parameters(), lr=plan.lr)
        outcomes.append(
            train_trial(model, optimizer, nn.CrossEntropyLoss(), train, val, None, plan)
        )
    whole, parts = outcomes
    assert whole.status == parts.status == "done"
    assert len(whole.points) == len(parts.points) == 5
    for a, b in zip(whole.points, parts.points, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-5, abs=1e-6, nan_ok=True)
        assert b.val_loss == pytest.approx(a.val_loss, rel=1e-5, abs=1e-6)


def test_stacked_trials_refuse_accumulation() -> None:
    plan = TrialPlan(lr=0.1, batch_size=8, epochs=1, eval_every=1, seed=0, accumulation_steps=2)
    with pytest.raises(ValueError, match="gradient accumulation runs on the plain loop"):
        check_stack([StackedTrial(plan)])


# advise: a batch over the memory trains as micro-batches, with the same answer


def memory_for(train: TensorData, examples: int) -> int:
    """Bytes under which the memory model lets ``examples`` examples train at once."""
    model = make_model(0)
    roomy = estimate_ceiling(model, nn.CrossEntropyLoss(), train, "sgd", memory=2**40)
    assert roomy.fixed_bytes is not None and roomy.example_bytes is not None
    return int(roomy.fixed_bytes + roomy.example_bytes * (examples + 0.5))


def settings(**changes: object) -> AdviseSettings:
    base = {"epochs": 2.0, "batch_size": 64, "workers": 1, "candidates": 3, "engine": "sequential"}
    return AdviseSettings(**{**base, **changes})  # type: ignore[arg-type]


def test_advise_over_the_memory_answers_micro_batches_and_the_same_race() -> None:
    train, val = problem()
    memory = memory_for(train, 20)
    limited = advise(make_model, train, val, settings(memory=memory, ceiling="memory"))
    whole = advise(make_model, train, val, settings())
    got = limited.micro_batching
    assert (got.micro_batch_size, got.accumulation_steps) == (16, 4)
    assert got.largest_fitting == 20 and got.method == "memory"
    assert got.micro_batch_size * got.accumulation_steps == limited.batch_size == 64
    assert whole.micro_batching.accumulation_steps == 1
    assert limited.engine == "sequential" and limited.engine_reason is not None
    # The same steps: the same range test, the same candidates, the same race to round-off.
    assert limited.range_test.suggestions == pytest.approx(whole.range_test.suggestions)
    assert [c.lr for c in limited.candidates] == pytest.approx([c.lr for c in whole.candidates])
    for a, b in zip(whole.candidates, limited.candidates, strict=True):
        assert b.value == pytest.approx(a.value, abs=1e-9)
        assert b.epochs_run == a.epochs_run
    assert limited.lr == pytest.approx(whole.lr)
    data = limited.to_json()
    assert data["micro_batch_size"] == 16 and data["accumulation_steps"] == 4
    assert data["hf_trainer"] == {
        "per_device_train_batch_size": 16,
        "gradient_accumulation_steps": 4,
    }


def test_advise_takes_the_callers_accumulation_without_measuring() -> None:
    train, val = problem()
    found = advise(make_model, train, val, settings(accumulation_steps=2, epochs=1.0))
    assert found.micro_batching == MicroBatching(64, 32, 2)
    assert found.micro_batching.largest_fitting is None


def test_the_cli_says_how_the_batch_trains_in_memory_and_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinyjob.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make_model():\n"
        "    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))\n\n"
        "def make_data():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randn(1200, 8, generator=g)\n"
        "    return x, (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["advise", "--model", "tinyjob:make_model", "--data", "tinyjob:make_data"]
    args += ["--batch-size", "64", "--epochs", "1", "--workers", "1", "--candidates", "2"]
    status, out, err = run([*args, "--accumulate", "4", "--json", "a.json"], capsys)
    assert status == 0, err
    assert (
        "memory: batch 64 trains as 4 micro-batches of 16, gradients accumulated (the same "
        "steps)" in out
    )
    assert (
        "in the Hugging Face Trainer: per_device_train_batch_size=16, "
        "gradient_accumulation_steps=4" in out
    )
    data = json.loads((tmp_path / "a.json").read_text())
    assert (data["micro_batch_size"], data["accumulation_steps"]) == (16, 4)
    assert data["engine"] == "sequential"


def test_measuring_the_memory_draws_nothing_the_race_would_see() -> None:
    """A model with dropout: the memory model's forward passes come from a fork of the RNG, so
    the advice is the same with the memory measured as with k given."""
    train, val = problem(600)

    def dropping(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.Tanh(), nn.Linear(16, 2))

    measured = advise(dropping, train, val, settings(batch_size=32, epochs=1.0))
    given = advise(dropping, train, val, settings(batch_size=32, epochs=1.0, accumulation_steps=1))
    assert measured.micro_batching.method == "memory" and given.micro_batching.method == "given"

    def losses(found: Advice) -> list[float]:
        return [p.loss for p in found.range_test.rounds[0].records[0].points]

    assert losses(measured) == losses(given)  # the range test's dropout masks included
    assert [c.value for c in measured.candidates] == [c.value for c in given.candidates]
    assert measured.lr == given.lr
