"""lrkit inside Lightning's ``Trainer.fit`` (``lrkit.integrations.lightning``), on tiny MLPs
whose batches are tuples and dicts (with strings among them): the range test sets the
module's lr, gives what ``find_lr`` gives on the same model, data and loss, and leaves the
weights, the optimizer and the RNGs bitwise as they were; the noise scale is logged at its
steps and does not change training; every bad input is a one-line error."""

from __future__ import annotations

import copy
import csv
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset

pytest.importorskip("lightning")

import lightning
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, Logger

from lrkit.errors import LrkitValueError
from lrkit.integrations.lightning import (
    FIGURE,
    NoiseScaleCallback,
    RangeTestCallback,
    trainer_settings,
)
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.settings import RangeTestSettings

D, CLASSES, EXAMPLES, BATCH = 6, 3, 192, 16
PROGRAM = "1e-3:1e-2:3e-3@2,1e-2:0.1:3e-2@2,0.1:1:0.3@2,1:30:3@2"
QUICK = RangeTestSettings(batch_size=BATCH, program=PROGRAM, rounds=2, points=6, repeats=2)


def blobs() -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(EXAMPLES, D, generator=g)
    return TensorDataset(x, x[:, :CLASSES].argmax(dim=1))


class Named(Dataset):  # type: ignore[type-arg]
    """Examples as dicts, a string among them: batches no (inputs, targets) pair holds."""

    def __init__(self) -> None:
        self.data = blobs()

    def __len__(self) -> int:
        return EXAMPLES

    def __getitem__(self, i: int) -> dict[str, Any]:
        x, y = self.data[i]
        return {"features": x, "label": y, "id": f"example-{i}"}


class Tuples(LightningModule):
    """Cross-entropy of an MLP on (x, y) batches; logs its loss; lr on the module."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    def train_dataloader(self) -> DataLoader:  # type: ignore[type-arg]
        return DataLoader(blobs(), batch_size=BATCH, shuffle=True)


class Dicts(Tuples):
    """Dict batches with strings, the loss returned in a dict; lr in ``hparams``, two param
    groups at different lrs."""

    def __init__(self, learning_rate: float = 0.05) -> None:
        super().__init__()
        del self.lr
        self.save_hyperparameters()
        self.log_calls = 0

    def log_dict(self, *args: Any, **kwargs: Any) -> None:
        self.log_calls += 1
        super().log_dict(*args, **kwargs)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        assert all(name.startswith("example-") for name in batch["id"])
        loss = F.cross_entropy(self(batch["features"]), batch["label"])
        self.log_dict({"train_loss": loss}, on_step=True, on_epoch=True)
        return {"loss": loss}

    def configure_optimizers(self) -> Any:
        lr = self.hparams.learning_rate
        groups = [
            {"params": self.net[0].parameters(), "lr": lr},
            {"params": self.net[2].parameters(), "lr": lr / 4},
        ]
        optimizer = torch.optim.SGD(groups, lr=lr)
        return {
            "optimizer": optimizer,
            "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 5),
        }

    def train_dataloader(self) -> DataLoader:  # type: ignore[type-arg]
        return DataLoader(Named(), batch_size=BATCH, shuffle=True)


class Snapshot(Callback):
    """The weights, the optimizer and the RNGs when training starts (at its place in the
    callbacks)."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}
        self.optimizer = copy.deepcopy(trainer.optimizers[0].state_dict())
        self.rngs = (torch.get_rng_state(), random.getstate(), np.random.get_state())  # noqa: NPY002


def fit(
    module: LightningModule,
    tmp_path: Path,
    callbacks: list[Callback],
    steps: int = 6,
    logger: Any = CSVLogger,
    **kw: Any,
) -> Trainer:
    """``module`` fitted ``steps`` steps on the CPU, quietly; ``logger`` a CSV log in
    ``tmp_path`` unless given."""
    trainer = Trainer(
        accelerator="cpu",
        max_steps=steps,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=CSVLogger(tmp_path) if logger is CSVLogger else logger,
        callbacks=callbacks,
        **kw,
    )
    trainer.fit(module)
    return trainer


def logged(trainer: Trainer) -> list[dict[str, str]]:
    assert trainer.log_dir is not None
    with open(Path(trainer.log_dir) / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def losses(trainer: Trainer) -> list[tuple[str, ...]]:
    """The rows that log the module's loss: their step and loss (per step, over the
    epoch)."""
    names = ("train_loss", "train_loss_step", "train_loss_epoch")
    rows = [(r["step"], *(r.get(n, "") for n in names)) for r in logged(trainer)]
    return [r for r in rows if any(r[1:])]


def test_the_range_test_leaves_weights_optimizer_and_rngs_bitwise_as_they_were(
    tmp_path: Path,
) -> None:
    lightning.seed_everything(0)
    before, after = Snapshot(), Snapshot()
    test = RangeTestCallback(QUICK, update_attr=False, plot=False)
    module = Tuples()
    trainer = fit(module, tmp_path / "test", [before, test, after], steps=3, log_every_n_steps=1)
    assert test.result is not None and test.result.suggested_lr is not None
    lightning.seed_everything(0)
    alone = Tuples()
    trainer_alone = fit(alone, tmp_path / "alone", [], steps=3, log_every_n_steps=1)
    # Training and its logs are the ones without the test: none of its steps' self.log.
    assert all(torch.equal(v, alone.state_dict()[k]) for k, v in module.state_dict().items())
    assert losses(trainer) == losses(trainer_alone)
    assert before.weights.keys() == after.weights.keys()
    assert all(torch.equal(before.weights[k], after.weights[k]) for k in before.weights)
    assert before.optimizer == after.optimizer  # momentum buffers: none yet, none left
    assert torch.equal(before.rngs[0], after.rngs[0])
    assert before.rngs[1] == after.rngs[1]
    assert all(np.array_equal(a, b) for a, b in zip(before.rngs[2], after.rngs[2], strict=True))


def test_the_range_test_is_find_lrs_on_the_same_model_data_and_loss(tmp_path: Path) -> None:
    lightning.seed_everything(0)
    module = Tuples()
    oracle_model = copy.deepcopy(module)
    test = RangeTestCallback(QUICK, update_attr=False, plot=False)
    fit(module, tmp_path, [test], steps=1)
    loader = DataLoader(blobs(), batch_size=BATCH, shuffle=True, generator=torch.Generator())
    optimizer = torch.optim.SGD(oracle_model.parameters(), lr=0.05, momentum=0.9)
    oracle = find_lr(oracle_model, loader, QUICK, optimizer=optimizer)
    assert test.result is not None and len(test.result.rounds) == 2
    assert test.result.model == "Tuples" and test.result.batch_size == BATCH
    same = {"seconds": 0.0, "data": ""}
    assert replace(test.result, **same) == replace(oracle, **same)


def test_the_suggested_lr_is_set_on_the_module_and_its_optimizer_and_logged(
    tmp_path: Path,
) -> None:
    lightning.seed_everything(0)
    module = Tuples()
    test = RangeTestCallback(QUICK)
    trainer = fit(module, tmp_path, [test], steps=1)
    assert test.result is not None
    lr = test.result.suggested_lr
    assert lr is not None and module.lr == lr
    assert trainer.optimizers[0].param_groups[0]["lr"] == lr
    rows = [r for r in logged(trainer) if r.get("lrkit/suggested_lr")]
    assert [float(r["lrkit/suggested_lr"]) for r in rows] == [pytest.approx(lr)]
    assert all(r["step"] == "0" for r in rows)
    assert test.plot_path == Path(str(trainer.log_dir)) / FIGURE
    assert test.plot_path.read_bytes()[:4] == b"\x89PNG"


def test_hparams_groups_and_schedulers_follow_the_suggestion_on_dict_batches(
    tmp_path: Path,
) -> None:
    lightning.seed_everything(0)
    module = Dicts()
    test = RangeTestCallback(QUICK, plot=False)
    trainer = fit(module, tmp_path, [test], steps=1, logger=False)
    assert test.result is not None
    lr = test.result.suggested_lr
    assert lr is not None and module.hparams.learning_rate == lr
    groups = trainer.optimizers[0].param_groups
    assert [g["initial_lr"] for g in groups] == pytest.approx([lr, lr / 4])
    assert trainer.lr_scheduler_configs[0].scheduler.base_lrs == pytest.approx([lr, lr / 4])


class FigureLogger(Logger):
    """A logger whose experiment takes figures, as TensorBoard's does."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[tuple[str, int]] = []

    @property
    def experiment(self) -> FigureLogger:
        return self

    def add_figure(self, tag: str, figure: Any, global_step: int, close: bool) -> None:
        assert figure.axes and not close
        self.figures.append((tag, global_step))

    @property
    def name(self) -> str:
        return "figures"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def test_the_figure_goes_to_a_logger_that_takes_figures(tmp_path: Path) -> None:
    lightning.seed_everything(0)
    figures = FigureLogger()
    test = RangeTestCallback(QUICK, update_attr=False)
    logger = [CSVLogger(tmp_path), figures]
    trainer = fit(Tuples(), tmp_path, [test], steps=1, logger=logger, default_root_dir=tmp_path)
    assert figures.figures == [("lrkit/range_test", 0)]
    assert (Path(str(trainer.log_dir)) / FIGURE).is_file()


def test_the_noise_scale_is_logged_at_its_steps_and_changes_no_training(
    tmp_path: Path,
) -> None:
    weights, logs = [], []
    for callbacks in ([], [NoiseScaleCallback(3, groups=2, big_factor=2)]):
        lightning.seed_everything(0)
        module = Dicts()
        trainer = fit(
            module, tmp_path / str(len(callbacks)), callbacks, steps=7, log_every_n_steps=1
        )
        weights.append(module.state_dict())
        logs.append(losses(trainer))
        # The fit's 7 steps and the callback's 3 readings, none of the measurements' steps.
        assert module.log_calls == 7 + 3 * len(callbacks)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert len(logs[0]) == 8 and logs[0] == logs[1]  # no measurement's self.log
    noise = callbacks[0]
    assert isinstance(noise, NoiseScaleCallback) and len(noise.readings) == 3
    rows = [r for r in logged(trainer) if r.get("lrkit/b_simple")]
    assert [r["step"] for r in rows] == ["0", "3", "6"]
    assert all(float(r["lrkit/b_simple"]) == float(r["lrkit/critical_batch_size"]) for r in rows)
    last = noise.readings[-1].b_simple_smoothed
    assert float(trainer.callback_metrics["lrkit/b_simple"]) == pytest.approx(last)


def test_accumulating_batches_are_measured_once_an_optimizer_step(tmp_path: Path) -> None:
    lightning.seed_everything(0)
    noise = NoiseScaleCallback(2, batch_size=8, groups=2, big_factor=2)
    fit(Tuples(), tmp_path, [noise], steps=4, accumulate_grad_batches=2)
    assert len(noise.readings) == 2  # steps 0 and 2 of 4, eight batches
    assert noise.probe is not None and noise.probe.batch_size == 8


def test_the_trainers_batch_size_and_accumulation_are_the_tests(tmp_path: Path) -> None:
    seen: list[RangeTestSettings] = []

    class Settings(Callback):
        def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
            seen.append(trainer_settings(trainer))

    fit(Tuples(), tmp_path, [Settings()], steps=1, accumulate_grad_batches=3)
    assert seen == [RangeTestSettings(batch_size=BATCH, accumulation_steps=3)]


class NoLr(Tuples):
    def __init__(self) -> None:
        super().__init__()
        del self.lr

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class ReturnsNone(Tuples):
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        super().training_step(batch, batch_idx)


class ReturnsVector(Tuples):
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        return F.cross_entropy(self(x), y, reduction="none")


class Manual(Tuples):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        optimizer = self.optimizers()
        loss = super().training_step(batch, batch_idx)
        optimizer.zero_grad()  # type: ignore[union-attr]
        self.manual_backward(loss)
        optimizer.step()  # type: ignore[union-attr]


class Batched(Tuples):
    def train_dataloader(self) -> DataLoader:  # type: ignore[type-arg]
        sampler = BatchSampler(RandomSampler(blobs()), BATCH, drop_last=False)
        return DataLoader(blobs(), batch_sampler=sampler)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RangeTestCallback("1e-3:1:0.1"), "settings must be a RangeTestSettings or None"),  # type: ignore[arg-type]
        (lambda: RangeTestCallback(attr_name=""), "attr_name must be an attribute's name or None"),
        (lambda: RangeTestCallback(update_attr="yes"), "update_attr must be True or False"),  # type: ignore[arg-type]
        (lambda: RangeTestCallback(plot=1), "plot must be True or False"),  # type: ignore[arg-type]
        (lambda: NoiseScaleCallback(0), "every_n_steps must be an integer > 0, got 0"),
        (lambda: NoiseScaleCallback(2.5), "every_n_steps must be an integer > 0"),  # type: ignore[arg-type]
        (lambda: NoiseScaleCallback(batch_size=0), "batch_size must be an integer > 0"),
        (lambda: NoiseScaleCallback(groups=1), "groups must be an integer >= 2"),
        (lambda: NoiseScaleCallback(big_factor=1), "big_factor must be an integer >= 2"),
        (lambda: NoiseScaleCallback(smoothing=1.0), r"smoothing must be a number in \[0, 1\)"),
        (lambda: NoiseScaleCallback(seed=-1), "seed must be"),
    ],
)
def test_bad_options_are_one_line_errors(make: Any, message: str) -> None:
    with pytest.raises(LrkitValueError, match=message) as caught:
        make()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("module", "callback", "message"),
    [
        (NoLr, RangeTestCallback(QUICK), "NoLr has no lr or learning_rate attribute"),
        (Tuples, RangeTestCallback(QUICK, attr_name="step_size"), "no step_size attribute"),
        (
            ReturnsNone,
            RangeTestCallback(QUICK),
            "training_step must return the loss, a scalar tensor or a dict with 'loss'; "
            "it returned NoneType",
        ),
        (ReturnsVector, RangeTestCallback(QUICK), r"it returned a tensor of shape \(16,\)"),
        (ReturnsNone, NoiseScaleCallback(groups=2, big_factor=2), "it returned NoneType"),
        (Manual, RangeTestCallback(QUICK), "RangeTestCallback needs automatic optimization"),
        (Manual, NoiseScaleCallback(), "NoiseScaleCallback needs automatic optimization"),
        (Batched, RangeTestCallback(), "has no batch_size .*RangeTestSettings\\(batch_size"),
        (Batched, NoiseScaleCallback(), "has no batch_size .*NoiseScaleCallback\\(batch_size"),
    ],
)
def test_modules_lrkit_cannot_run_are_one_line_errors(
    tmp_path: Path, module: type[LightningModule], callback: Callback, message: str
) -> None:
    lightning.seed_everything(0)
    with pytest.raises(LrkitValueError, match=message) as caught:
        fit(module(), tmp_path, [callback], steps=1)
    assert "\n" not in str(caught.value)
