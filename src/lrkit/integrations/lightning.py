"""lrkit inside Lightning's ``Trainer.fit`` (``pip install 'lrkit[lightning]'``)::

    trainer = lightning.Trainer(callbacks=[RangeTestCallback(), NoiseScaleCallback()])
    trainer.fit(module, datamodule)

Both callbacks train on what the fit trains on: the module's own loss, whatever its
``training_step(batch, batch_idx)`` returns (a scalar tensor, or a dict with ``"loss"``), run
as the fit runs it (``trainer.strategy.training_step``: under the precision plugin), on batches
of the training ``DataLoader``'s dataset collated by its ``collate_fn`` and moved to the device
by Lightning's transfer hooks (``trainer.strategy.batch_to_device``), of any structure.
While lrkit runs the step, the module's ``self.log`` and ``self.log_dict`` do nothing, so none
of its values reach the user's logs. Both need automatic optimization, one optimizer and one
process (``trainer.world_size`` 1).

``RangeTestCallback`` runs lrkit's range test (``rangetest.find.find_lr``: its programs,
narrowing rounds, repeats and rules) when training starts (``on_train_start``: the training
``DataLoader``, the optimizer and its schedulers are built by then), on the fit's optimizer,
whose lr it moves (the param groups' ratios kept). The module, that optimizer and every RNG
are restored bitwise afterwards. It then sets the module's lr as Lightning's
``LearningRateFinder`` does (``lr`` or ``learning_rate``, on the module or in its
``hparams``; ``attr_name`` names another) and on the optimizer already built
(``set_lr``), keeps the result in ``callback.result``, logs ``lrkit/suggested_lr`` and the
figure (``lrkit-range-test.png`` in the trainer's ``log_dir``, and to every logger whose
``experiment`` takes figures, TensorBoard's ``add_figure``).

``NoiseScaleCallback`` measures the gradient noise scale B_simple (``noise.probe.NoiseProbe``)
at step 0 and every ``every_n_steps`` optimizer steps, before that step's update, and logs it
to the trainer's loggers at that step: ``lrkit/b_simple`` (smoothed, as ``lrkit noise``
reports it), ``lrkit/b_simple_raw``, ``lrkit/b_simple_stderr`` and the critical batch size
it implies, ``lrkit/critical_batch_size``; they are in ``trainer.callback_metrics`` too.
A measurement costs ``groups`` x ``big_factor`` forward and backward passes (32 by default)
of ``batch_size`` examples: every 320 steps, about a tenth more compute. Training cannot tell
that it ran (weights, ``.grad``, buffers, mode and RNGs untouched).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.parsing import lightning_hasattr, lightning_setattr
from torch.utils.data import DataLoader, IterableDataset

from lrkit import validation as check
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.noise.probe import (
    BIG_FACTOR,
    GROUPS,
    SMOOTHING,
    NoiseProbe,
    NoiseReading,
    check_probe_settings,
)
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.result import RangeTestResult
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.training.whole_batches import Move, Step, StepModel, returned_loss, whole_batches

LR_ATTRIBUTES = ("lr", "learning_rate")
"""The module's lr attribute, as Lightning's ``LearningRateFinder`` looks for it."""
FIGURE = "lrkit-range-test.png"
"""The range test's figure, in the trainer's ``log_dir``."""
EVERY_N_STEPS = 320
"""Optimizer steps between noise measurements: 32 passes each, about a tenth more compute."""
SILENCED = ("log", "log_dict")
"""The module's logging methods, no-ops while lrkit runs its ``training_step``."""


def trainer_settings(trainer: Trainer) -> RangeTestSettings:
    """lrkit's range-test settings at the fit's batch size (its training ``DataLoader``'s) and
    gradient accumulation (every other field lrkit's default)."""
    loader = _train_loader(trainer)
    if loader.batch_size is None:
        raise LrkitValueError(
            "the training DataLoader has no batch_size (it has a batch_sampler): give "
            "RangeTestCallback(settings=RangeTestSettings(batch_size=...))"
        )
    return RangeTestSettings(
        batch_size=loader.batch_size, accumulation_steps=trainer.accumulate_grad_batches
    )


class RangeTestCallback(Callback):
    """lrkit's range test when training starts, the module's lr set from it (the module's
    docstring).

    Args:
        settings: the test's settings (``RangeTestSettings``: batch size, program, rounds,
            repeats, rule, ...), used as given; default ``trainer_settings(trainer)``.
        attr_name: the module's lr attribute (on it or in its ``hparams``); default the first
            of ``lr``, ``learning_rate`` it has.
        update_attr: set the lr on the module and its optimizer (else only report it).
        plot: save the figure and log it to the loggers that take figures.
    """

    def __init__(
        self,
        settings: RangeTestSettings | None = None,
        *,
        attr_name: str | None = None,
        update_attr: bool = True,
        plot: bool = True,
    ) -> None:
        if settings is not None and not isinstance(settings, RangeTestSettings):
            raise InvalidParameterError("settings", "a RangeTestSettings or None", settings)
        if attr_name is not None and not (isinstance(attr_name, str) and attr_name):
            raise InvalidParameterError("attr_name", "an attribute's name or None", attr_name)
        _check_flag("update_attr", update_attr)
        _check_flag("plot", plot)
        self.settings, self.attr_name = settings, attr_name
        self.update_attr, self.plot = update_attr, plot
        self.result: RangeTestResult | None = None
        self.plot_path: Path | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _check_fit(trainer, pl_module, "RangeTestCallback")
        attr = _lr_attribute(pl_module, self.attr_name) if self.update_attr else None
        settings = self.settings or trainer_settings(trainer)
        loader = _train_loader(trainer)
        data = whole_batches(
            loader.dataset,
            settings.batch_size,
            loader.collate_fn,
            _move(trainer),
            drop_last=loader.drop_last,
        )
        model = StepModel(pl_module, _step_loss(trainer))
        with _silenced(pl_module):
            result = find_lr(
                model, data, settings, loss_fn=returned_loss, optimizer=trainer.optimizers[0]
            )
        self.result = replace(result, model=type(pl_module).__name__)
        lr = self.result.suggested_lr
        if attr is not None and lr is not None:
            set_lr(trainer, pl_module, attr, lr)
        if lr is not None:
            for logger in trainer.loggers:
                logger.log_metrics({"lrkit/suggested_lr": lr}, step=trainer.global_step)
        if self.plot:
            self.plot_path = _log_figure(trainer, self.result)


def set_lr(trainer: Trainer, module: LightningModule, attr: str, lr: float) -> None:
    """``lr`` on ``module`` (its ``attr``, as Lightning's ``LearningRateFinder`` sets it) and
    on the optimizer the fit has built already: its param groups' ``lr`` and ``initial_lr``
    and its schedulers' ``base_lrs`` are scaled by ``lr`` / group 0's lr as built, so the
    groups keep their ratios and a schedule built in ``configure_optimizers`` follows (where
    that lr is 0, every group gets ``lr``, as Lightning sets it)."""
    lightning_setattr(module, attr, lr)
    optimizer = trainer.optimizers[0]
    first = optimizer.param_groups[0]
    built = float(first.get("initial_lr", first["lr"]))

    def scaled(value: float) -> float:
        return value * lr / built if built > 0 else lr

    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr"):
            if key in group:
                group[key] = scaled(float(group[key]))
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if getattr(scheduler, "optimizer", None) is optimizer and hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [scaled(float(b)) for b in scheduler.base_lrs]


class NoiseScaleCallback(Callback):
    """The gradient noise scale during training, logged as ``lrkit/b_simple`` with the
    critical batch size it implies (the module's docstring).

    Args:
        every_n_steps: optimizer steps between measurements (the first at step 0).
        batch_size: B_small, the examples of each batch measured; default the training
            ``DataLoader``'s.
        groups, big_factor, smoothing: as ``noise.probe.NoiseProbe`` takes them.
        seed: seeds the order in which the measurements read the training set (their own
            ``DataLoader`` over its dataset, with its ``collate_fn``, whole batches only).
    """

    def __init__(
        self,
        every_n_steps: int = EVERY_N_STEPS,
        *,
        batch_size: int | None = None,
        groups: int = GROUPS,
        big_factor: int = BIG_FACTOR,
        smoothing: float = SMOOTHING,
        seed: int = 0,
    ) -> None:
        check.positive_int("every_n_steps", every_n_steps)
        if batch_size is not None:
            check.positive_int("batch_size", batch_size)
        check_probe_settings(groups, big_factor, smoothing)
        check.seed("seed", seed)
        self.every_n_steps, self.batch_size = every_n_steps, batch_size
        self.groups, self.big_factor, self.smoothing = groups, big_factor, smoothing
        self.seed = seed
        self.probe: NoiseProbe[Any] | None = None
        self._measured_at: int | None = None

    @property
    def readings(self) -> list[NoiseReading]:
        """Every measurement of the last fit, in order."""
        return self.probe.readings if self.probe is not None else []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _check_fit(trainer, pl_module, "NoiseScaleCallback")
        loader = _train_loader(trainer)
        size = self.batch_size or loader.batch_size
        if size is None:
            raise LrkitValueError(
                "the training DataLoader has no batch_size (it has a batch_sampler): give "
                "NoiseScaleCallback(batch_size=...)"
            )
        shuffle = not isinstance(loader.dataset, IterableDataset)
        batches = DataLoader(
            loader.dataset,
            batch_size=size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=loader.collate_fn,
            drop_last=True,
        )
        step, move = _step_loss(trainer), _move(trainer)
        self.probe = NoiseProbe(
            pl_module,
            lambda batch: step(move(batch, pl_module.device)),
            batches,
            size,
            groups=self.groups,
            big_factor=self.big_factor,
            smoothing=self.smoothing,
        )
        self._measured_at = None

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        # Accumulating batches share an optimizer step: the first of them measures.
        if self.probe is None or step % self.every_n_steps or step == self._measured_at:
            return
        self._measured_at = step
        with _silenced(pl_module):
            metrics = self.probe.measure().metrics()
        # Straight to the loggers, at this step whatever their log_every_n_steps, and to
        # callback_metrics (for a checkpoint or early stopping that monitors them).
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, logger=False)


def _step_loss(trainer: Trainer) -> Step:
    """The loss of a batch (on the device) as the fit computes it: the module's
    ``training_step``, under the precision plugin, given the batches' running count as
    ``batch_idx``; a return that is no loss is a one-line error."""
    counter = itertools.count()

    def step(batch: object) -> torch.Tensor:
        returned = trainer.strategy.training_step(batch, next(counter))
        loss = returned.get("loss") if isinstance(returned, Mapping) else returned
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise LrkitValueError(
                "training_step must return the loss, a scalar tensor or a dict with 'loss'; "
                f"it returned {_described(returned)}"
            )
        return loss

    return step


def _move(trainer: Trainer) -> Move:
    """Lightning's own transfer of a batch to a device (the module's transfer hooks)."""
    return lambda batch, device: trainer.strategy.batch_to_device(batch, device)


@contextmanager
def _silenced(module: LightningModule) -> Iterator[None]:
    """The module's ``self.log`` and ``self.log_dict`` as no-ops (instance attributes in front
    of the methods), as they were afterwards."""
    kept = {name: module.__dict__[name] for name in SILENCED if name in module.__dict__}
    for name in SILENCED:
        object.__setattr__(module, name, _ignored)
    try:
        yield
    finally:
        for name in SILENCED:
            if name in kept:
                object.__setattr__(module, name, kept[name])
            else:
                object.__delattr__(module, name)


def _ignored(*args: object, **kwargs: object) -> None:
    return None


def _check_fit(trainer: Trainer, module: LightningModule, who: str) -> None:
    """The fit is one lrkit can run the module's step in: one process, automatic
    optimization, one optimizer."""
    if trainer.world_size != 1:
        raise LrkitValueError(
            f"{who} runs in one process; this fit has world_size {trainer.world_size}: run it "
            "on one device"
        )
    if not module.automatic_optimization:
        raise LrkitValueError(
            f"{who} needs automatic optimization (training_step returns the loss); "
            f"{type(module).__name__} sets automatic_optimization = False"
        )
    if len(trainer.optimizers) != 1:
        raise LrkitValueError(
            f"{who} needs one optimizer; configure_optimizers gave {len(trainer.optimizers)}"
        )


def _train_loader(trainer: Trainer) -> DataLoader:  # type: ignore[type-arg]
    loader = trainer.train_dataloader
    if not isinstance(loader, DataLoader):
        raise LrkitValueError(
            f"lrkit needs one training DataLoader; the fit has {type(loader).__name__}"
        )
    return loader


def _lr_attribute(module: LightningModule, attr_name: str | None) -> str:
    """The module's lr attribute, as Lightning's ``LearningRateFinder`` finds it."""
    names = (attr_name,) if attr_name is not None else LR_ATTRIBUTES
    for name in names:
        if lightning_hasattr(module, name):
            return name
    raise LrkitValueError(
        f"{type(module).__name__} has no {' or '.join(names)} attribute, on itself or in its "
        "hparams, to set the suggested lr on: add one, name it with attr_name, or pass "
        "update_attr=False"
    )


def _log_figure(trainer: Trainer, result: RangeTestResult) -> Path:
    """The figure saved in the trainer's ``log_dir`` (its ``default_root_dir`` without a
    logger) and given to every logger whose ``experiment`` takes figures."""
    from lrkit.plots.figure import save
    from lrkit.plots.rangetest import range_test_figure

    figure = range_test_figure(result)
    for logger in trainer.loggers:
        add_figure = getattr(getattr(logger, "experiment", None), "add_figure", None)
        if callable(add_figure):
            add_figure("lrkit/range_test", figure, global_step=trainer.global_step, close=False)
    path = Path(trainer.log_dir or trainer.default_root_dir) / FIGURE
    path.parent.mkdir(parents=True, exist_ok=True)
    save(figure, path)
    return path


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidParameterError(name, "True or False", value)


def _described(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(map(str, value))}"
    return type(value).__name__
