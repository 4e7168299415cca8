"""Inputs at fault and budgets out of bounds, in the verbs with a budget (advise, sweep, noise,
laws): each exits 2 with one line naming the option and what is allowed, before any training
and leaving nothing behind; a budget the data cannot give one optimizer step (or give fewer
than ``MAX_STEPS``) is refused; data that hold nan are refused when loaded; a default the user
did not give is never the option blamed."""

from __future__ import annotations

import math
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from cli_run import run
from lrkit import validation as check
from lrkit.advise import driver
from lrkit.advise.candidates import Candidate
from lrkit.advise.race import RaceFailed
from lrkit.advise.result import RacedCandidate
from lrkit.advise.settings import AdviseSettings
from lrkit.batchsize import driver as batch_driver
from lrkit.batchsize.driver import advise_batch_size, time_epochs
from lrkit.batchsize.settings import BatchSettings
from lrkit.data.mnist import bundled_sample_dir
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.training.fit_check import check_finite, check_model_fits
from lrkit.training.loop import train_trial
from lrkit.training.records import TrialPlan

FAULT_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))

    def sized_model(width):
        return nn.Sequential(nn.Linear(10, width), nn.Tanh(), nn.Linear(width, 3))

    def frozen_model():
        model = make_model()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    class Parameterless(nn.Module):
        def forward(self, x):
            return x[:, :3] * 2

    def no_parameters():
        return Parameterless()

    def examples():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(600, 10, generator=g)
        return x, x[:, :3].argmax(dim=1)

    def parts(x, y):
        return {"train": (x[:469], y[:469]), "val": (x[469:560], y[469:560]),
                "test": (x[560:], y[560:])}

    def make_data():
        return parts(*examples())

    def negative_labels():
        x, y = examples()
        return parts(x, y - 1)

    def large_labels():
        x, y = examples()
        return parts(x, y + 20)

    def nan_inputs():
        x, y = examples()
        x[::7] = float("nan")
        return parts(x, y)

    def inf_in_val():
        x, y = examples()
        x[500, 3] = float("inf")
        return parts(x, y)

    def small_val():
        x, y = examples()
        return {"train": (x[:500], y[:500]), "val": (x[500:510], y[500:510])}

    def vector_loss(output, target):
        return nn.functional.cross_entropy(output, target, reduction="none")

    def detached_loss(output, target):
        return nn.functional.cross_entropy(output.detach(), target)
    """
)
USER = ["--model", "faults:make_model", "--data", "faults:make_data"]
LAWS = ["laws", "--model", "faults:sized_model", "--widths", "8,16,32,64", "--store", "l.sqlite"]
SAMPLE_EPOCH = "(an epoch is 344 steps of batch 16 over 5500 examples)"
USER_EPOCH = "(an epoch is 30 steps of batch 16 over 469 examples)"
RUNG = "gives the race's first rung (1/6 of it) less than one optimizer step"
STEPS_BOUND = "must be a number in (0, 1e+09] (a run takes at most 1e+09 optimizer steps"
CHOOSING = "is for choosing the batch size, which --batch-size fixes: leave out one of them"
FROZEN = "--model: every parameter of the model is frozen (requires_grad is False on all 4"
NO_PARAMETERS = "--model: the model has no parameters: nothing to train"
NEGATIVE = "--data: the class labels include -1: cross-entropy's labels are 0, 1, ..."
LARGE = "--model and --data do not fit: the model's output of shape (16, 3) does not fit labels"
VECTOR = "--loss: the loss must be a scalar tensor (mean over the batch), got (16,)"
DETACHED = "--loss: the loss has no gradient"
NAN = "--data 'faults:nan_inputs': the training inputs hold 670 non-finite values (nan or inf)"
INF = "--data 'faults:inf_in_val': the validation inputs hold 1 non-finite value (nan or inf)"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the user module ``faults``; the bundled MNIST sample as
    $LRKIT_DATA_DIR, so that no note about it joins the one line of an error."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LRKIT_DATA_DIR", str(bundled_sample_dir()))
    (tmp_path / "faults.py").write_text(FAULT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def with_user(verb: list[str], model: str = "make_model", data: str = "make_data") -> list[str]:
    return [*verb, "--model", f"faults:{model}", "--data", f"faults:{data}"]


ADVISE = ["advise", "--batch-size", "16", "--epochs", "1"]
NOISE = ["noise", "--epochs", "0.5"]

FAULTS = [
    # a budget under one optimizer step, in every verb with one
    (
        ["advise", "--epochs", "1e-9", "--batch-size", "16"],
        2,
        f"--epochs 1e-09 {RUNG} {SAMPLE_EPOCH}",
    ),
    (
        ["advise", "--epochs", "0.5", "--batch-size", "5500"],
        2,
        f"--epochs 0.5 {RUNG} (an epoch is 1 step of batch 5500 over 5500 examples); give at "
        "least 6",
    ),
    (
        ["advise", "--epochs", "0.001"],
        2,
        f"--epochs 0.001 {RUNG} (an epoch is 688 steps of batch 8",
    ),
    (
        ["sweep", "--epochs", "1e-9", "--lr", "0.1", "--batch-size", "16", "--store", "s.sqlite"],
        2,
        f"--epochs 1e-09 is less than one optimizer step {SAMPLE_EPOCH}; give at least 0.00291",
    ),
    (
        ["noise", "--epochs", "1e-9"],
        2,
        f"--epochs 1e-09 is less than one optimizer step {SAMPLE_EPOCH}; give at least 0.00291",
    ),
    (
        [*LAWS, "--data", "faults:make_data", "--epochs", "0.001"],
        2,
        "--epochs 0.001 is less than one optimizer step (an epoch is 4 steps of batch 128 over "
        "469 examples); give at least 0.25",
    ),
    # a budget of more steps than a run takes: --epochs blamed first, never a default
    (["noise", "--epochs", "1e300", "--measure-every", "1e299"], 2, f"--epochs {STEPS_BOUND}"),
    (["noise", "--epochs", "1e300"], 2, f"--epochs {STEPS_BOUND}"),
    (
        ["noise", "--epochs", "1e8"],
        2,
        f"--epochs 1e+08 is more than 1e+09 optimizer steps {SAMPLE_EPOCH}; give at most 2.9e+06",
    ),
    (
        ["sweep", "--epochs", "1e300", "--lr", "0.1", "--batch-size", "16", "--store", "s.sqlite"],
        2,
        f"--epochs {STEPS_BOUND}",
    ),
    (
        [*LAWS, "--data", "faults:make_data", "--epochs", "1e8", "--batch-size", "16"],
        2,
        f"--epochs 1e+08 is more than 1e+09 optimizer steps {USER_EPOCH}; give at most 3.33e+07",
    ),
    (
        ["advise", "--time", "1e300"],
        2,
        "--time must be a number in (0, 1e+07] (seconds), got 1e+300",
    ),
    # options for choosing the batch size, given with a fixed one
    ([*ADVISE, "--min-batch-size", "32"], 2, f"--min-batch-size {CHOOSING}"),
    ([*ADVISE, "--max-batch-size", "64"], 2, f"--max-batch-size {CHOOSING}"),
    # micro-batches: only for a fixed batch, in a divisor of it, and memory for one example
    (
        ["advise", "--accumulate", "2"],
        2,
        "--accumulate is for a --batch-size that does not fit: the batch sizes advise chooses "
        "fit whole",
    ),
    (
        [*ADVISE, "--accumulate", "3"],
        2,
        "--accumulate must be a divisor of the batch size (16), got 3",
    ),
    (
        [*ADVISE, "--accumulate", "32"],
        2,
        "--accumulate must be an integer in [1, 16] (the batch size), got 32",
    ),
    (
        [*ADVISE, "--memory", "1KiB", "--ceiling", "memory"],
        2,
        "--batch-size: not even one example fits in memory (memory); give --memory higher",
    ),
    # a validation part too small to tell candidates apart
    (
        [*ADVISE, "--val-fraction", "1e-9"],
        2,
        "--val-fraction 1e-09 leaves 1 validation example of 6000; at least 50 are needed to "
        "judge runs on: give at least 0.00834",
    ),
    (
        with_user(ADVISE, data="small_val"),
        2,
        "--data 'faults:small_val': its val part holds 10 examples; at least 50 are needed",
    ),
    # a model with nothing to train
    (with_user(ADVISE, model="frozen_model"), 2, FROZEN),
    (with_user(NOISE, model="frozen_model"), 2, FROZEN),
    (with_user(NOISE, model="no_parameters"), 2, NO_PARAMETERS),
    # class labels the model's outputs cannot score, in the whole data
    (with_user(ADVISE, data="negative_labels"), 2, NEGATIVE),
    (with_user(NOISE, data="negative_labels"), 2, NEGATIVE),
    ([*LAWS, "--data", "faults:negative_labels", "--epochs", "0.5"], 2, NEGATIVE),
    (with_user(NOISE, data="large_labels"), 2, LARGE),
    # a loss that is not a scalar, or has no gradient
    ([*NOISE, *USER, "--loss", "faults:vector_loss"], 2, VECTOR),
    # advise checks the loss on the first 8 examples (its batch may not fit in memory whole)
    ([*ADVISE, *USER, "--loss", "faults:vector_loss"], 2, VECTOR.replace("(16,)", "(8,)")),
    ([*NOISE, *USER, "--loss", "faults:detached_loss"], 2, DETACHED),
    # inputs that are not numbers, refused when loaded
    (with_user(ADVISE, data="nan_inputs"), 2, NAN),
    (with_user(NOISE, data="nan_inputs"), 2, NAN),
    ([*LAWS, "--data", "faults:nan_inputs", "--epochs", "0.5"], 2, NAN),
    (
        with_user(
            ["sweep", "--lr", "0.1", "--batch-size", "16", "--store", "s.sqlite"],
            "make_model",
            "inf_in_val",
        ),
        2,
        INF,
    ),
]


def the_line(err: str) -> str:
    """stderr as the one line it must be."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(("args", "code", "message"), FAULTS)
def test_input_at_fault_exits_with_one_line_naming_it_before_any_work(
    workdir: Path, args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = set(workdir.iterdir())
    started = time.perf_counter()
    status, out, err = run(args, capsys)
    assert status == code, err
    assert out == ""
    line = the_line(err)
    assert line.startswith(f"lrkit {args[0]}: error: ")
    assert message in line
    assert set(workdir.iterdir()) - before <= {workdir / "__pycache__"}  # no store, no file
    assert time.perf_counter() - started < 60  # refused, not run


def test_advise_where_no_candidate_finished_exits_1_in_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A race whose every run diverged has nothing to advise (the race itself is tested in
    test_advise.py; here, what the CLI makes of it)."""

    def nobody_finishes(
        candidates: list[Candidate], *args: object, **kwargs: object
    ) -> tuple[list[RacedCandidate], list[float], dict[float, object]]:
        raced = [
            RacedCandidate(c.lr, c.sources, 0.0, math.nan, 0.0, "diverged", ()) for c in candidates
        ]
        return raced, [c.lr for c in candidates], {}

    monkeypatch.setattr(driver, "race", nobody_finishes)
    code, out, err = run(with_user(ADVISE), capsys)
    assert code == 1 and out == ""
    assert the_line(err).startswith(
        "lrkit advise: error: failed: RaceFailed: no candidate of the race finished (lr "
    )


def test_a_default_that_the_budget_cannot_hold_is_fitted_to_it_not_blamed(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """noise measures every 0.25 epochs by default: a run of 0.2 measures at its end."""
    code, out, err = run([*NOISE[:1], *USER, "--epochs", "0.2", "--examples", "64"], capsys)
    assert code == 0, err
    assert "--measure-every" not in err
    assert "critical batch size" in out


# the checks themselves, from Python


def test_a_budget_is_checked_in_optimizer_steps_with_the_least_that_holds() -> None:
    with pytest.raises(LrkitValueError) as caught:
        check.budget_steps("epochs", 1e-9, 5500, 16)
    assert str(caught.value).startswith("epochs 1e-09 is less than one optimizer step")
    assert caught.value.cli_message().startswith("--epochs 1e-09 ")
    least = 0.00291
    assert check.budget_steps("epochs", least, 5500, 16) == least  # the least given holds
    assert least * 344 >= 1 > (least - 1e-5) * 344  # and is rounded up, not down
    with pytest.raises(LrkitValueError, match=r"give at most 2\.9e\+06"):
        check.budget_steps("epochs", 1e7, 5500, 16)
    assert check.budget_steps("epochs", 2.9e6, 5500, 16) == 2.9e6


def test_a_time_budget_converted_to_epochs_blames_time() -> None:
    with pytest.raises(LrkitValueError) as caught:
        time_epochs(1e6, 1e-3, 5500, 16)
    assert caught.value.cli_message().startswith("--time must be at most 34400 s")
    assert "--epochs" not in caught.value.cli_message()
    assert time_epochs(10.0, 1e-3, 5500, 16) == pytest.approx(10 / 0.344)


def test_the_default_between_checks_fits_the_run() -> None:
    assert check.default_between_checks(0.25, 5.0) == 0.25
    assert check.default_between_checks(0.25, 0.2) == 0.2
    long = check.default_between_checks(0.25, 1e9)
    assert check.epochs_between_checks("measure_every", long, 1e9) == long


def classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3))


def test_labels_are_checked_over_every_target_the_run_will_read() -> None:
    """The first batch holds only good labels; a bad one further on is found all the same."""
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    later = torch.tensor([0, 1, 3])
    loss = nn.CrossEntropyLoss()
    check_model_fits(classifier(), loss, x, y, targets=(y,))
    with pytest.raises(LrkitValueError, match=r"does not fit labels 0..3"):
        check_model_fits(classifier(), loss, x, y, targets=(y, later))
    ignored = torch.tensor([0, -100, 2])  # cross-entropy's ignore_index is no label
    check_model_fits(classifier(), loss, x, y, targets=(ignored,))


def test_the_check_leaves_the_model_as_it_was() -> None:
    model = classifier()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_model_fits(model, nn.CrossEntropyLoss(), torch.randn(8, 4), torch.zeros(8).long())
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_float_targets_that_are_not_finite_are_named() -> None:
    data = TensorData(torch.randn(10, 2), torch.tensor([1.0, math.nan] * 5))
    with pytest.raises(LrkitValueError, match=r"the training targets hold 5 non-finite values"):
        check_finite({"training": data})
    check_finite({"training": TensorData(torch.randn(10, 2), torch.zeros(10).long())})


def test_a_run_whose_validation_loss_is_not_finite_is_diverged_not_done() -> None:
    """Finite training losses and a nan validation loss (the validation inputs hold nan):
    the run ends diverged at its first check, not "done" at an accuracy of chance."""
    g = torch.Generator().manual_seed(0)
    train = TensorData(torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g))
    val = TensorData(torch.full((16, 4), math.nan), torch.zeros(16).long())
    model = classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plan = TrialPlan(lr=0.1, batch_size=16, epochs=1.0, eval_every=0.5, seed=0)
    outcome = train_trial(model, optimizer, nn.CrossEntropyLoss(), train, val, None, plan)
    assert outcome.status == "diverged"
    assert outcome.diverged_iteration == 2  # the first check, after 2 of 4 steps
    assert len(outcome.points) == 1  # only the check before training


# the batch-size advice: a size whose race had no finisher is not advised


def problem() -> tuple[TensorData, TensorData]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long()
    return TensorData(x[:1000], y[:1000]), TensorData(x[1000:], y[1000:])


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))


BATCH_SETTINGS = BatchSettings(
    mode="epochs", max_batch_size=32, race=AdviseSettings(epochs=2.0, workers=1, candidates=3)
)


@pytest.mark.slow  # a ceiling, a noise run and step times first
def test_a_batch_size_whose_race_had_no_finisher_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raced = batch_driver.advise

    def none_finish_at_16(*args: object, **kwargs: object) -> object:
        settings = args[3]
        assert isinstance(settings, AdviseSettings)
        if settings.batch_size == 16:
            raise RaceFailed("no candidate of the race finished (lr 0.1 diverged)")
        return raced(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_driver, "advise", none_finish_at_16)
    found = advise_batch_size(make_model, *problem(), BATCH_SETTINGS)
    assert [r.batch_size for r in found.races] == [8, 32]
    assert found.batch_size in (8, 32)
    assert "not advised: batch size 16, no candidate finished" in found.reason


@pytest.mark.slow  # a ceiling, a noise run and step times first
def test_a_batch_size_advice_where_no_race_had_a_finisher_advises_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def none_finish(*args: object, **kwargs: object) -> object:
        raise RaceFailed("no candidate of the race finished (lr 0.1 diverged)")

    monkeypatch.setattr(batch_driver, "advise", none_finish)
    with pytest.raises(RaceFailed, match=r"batch size 8: no candidate of the race finished"):
        advise_batch_size(make_model, *problem(), BATCH_SETTINGS)
