"""lrkit inside a Hugging Face ``Trainer``: the learning-rate range test before it trains
(``find_lr_for_trainer``), the gradient noise scale while it trains (``NoiseScaleCallback``).

The range test runs lrkit's range test (``rangetest.find.find_lr``: its programs, narrowing rounds,
repeats and rules) on what the ``Trainer`` would train:

- its model, on the model's own loss (the ``labels`` its batches carry,
  ``training.outputs.ModelLoss``);
- its training set, its columns pruned to the model's ``forward`` as the ``Trainer`` prunes
  them, batched by its data collator at ``per_device_train_batch_size``, with its
  ``gradient_accumulation_steps`` (lrkit reshuffles it for every round, from its own seed);
- the optimizer its ``TrainingArguments`` build (``Trainer.create_optimizer``: AdamW with its
  weight-decay groups, by default), whose lr the test moves;
- the first ``eval_examples`` of its evaluation set, where it has one: their loss after each
  held lr is the curve the rules read.

The model, the optimizer and every RNG are restored bitwise afterwards, and the ``Trainer``
keeps no optimizer from the test, so ``trainer.train()`` builds its own as it would have::

    result = find_lr_for_trainer(trainer, plot="lr-find.png")
    trainer.args.learning_rate = result.suggested_lr
    trainer.train()

``NoiseScaleCallback`` logs the gradient noise scale while the ``Trainer`` trains
(``noise.probe.NoiseProbe``: the two-batch estimate on the Trainer's own loss,
``Trainer.compute_loss``, over batches of its training set drawn and collated as it draws
them, from the probe's own seeded order): ``lrkit/b_simple`` (smoothed, as ``lrkit noise``
reports it), ``lrkit/critical_batch_size`` (the batch size it implies), ``lrkit/b_simple_raw``
and ``lrkit/b_simple_stderr``. It measures after the first optimizer step and after every
``every_n_steps``-th, and logs through ``Trainer.log``, so the figures reach
``trainer.state.log_history`` and every reporter of ``report_to`` (TensorBoard, W&B, ...) at
that global step. That is why it is built from its ``Trainer`` and added to it afterwards::

    noise = NoiseScaleCallback(trainer, every_n_steps=200)
    trainer.add_callback(noise)
    trainer.train()
    noise.readings[-1].critical_batch_size  # the readings, for those who log nothing

A measurement costs ``groups`` x ``big_factor`` (32 by default) extra forward and backward
passes of ``per_device_train_batch_size`` examples; the Trainer's training is unchanged by
it, bitwise: weights, gradients, the model's mode and every torch RNG are as they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset
from transformers import TrainerCallback

from lrkit import validation as check
from lrkit.data.named import named_data
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.noise.probe import BIG_FACTOR, GROUPS, SMOOTHING, NoiseProbe, NoiseReading
from lrkit.rangetest.find import OnRoundStep, find_lr
from lrkit.rangetest.result import RangeTestResult
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.training.outputs import ModelLoss

EVAL_EXAMPLES = 512
"""Evaluation examples whose loss the test measures after each held lr."""

EVERY_N_STEPS = 500
"""Optimizer steps between noise-scale measurements: at the probe's defaults (32 forward and
backward passes a measurement) about 6% more compute than 500 steps without accumulation."""


def find_lr_for_trainer(
    trainer: Any,
    settings: RangeTestSettings | None = None,
    *,
    plot: str | Path | None = None,
    eval_examples: int = EVAL_EXAMPLES,
    on_step: OnRoundStep | None = None,
) -> RangeTestResult:
    """The range test on ``trainer``'s model, data and optimizer (see the module's
    docstring); ``settings`` default to the ``Trainer``'s batch size, accumulation and seed
    with lrkit's other defaults, and ``plot`` is where the figure is drawn (none by default).
    """
    if trainer.train_dataset is None:
        raise LrkitValueError("the Trainer has no train_dataset to run the range test on")
    settings = settings or trainer_settings(trainer.args)
    generator = torch.Generator()  # reseeded by the test for every round and repeat
    loader = DataLoader(
        _pruned(trainer, trainer.train_dataset, "training"),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=trainer.data_collator,
    )
    evaluation = _evaluation(trainer, settings.batch_size, eval_examples)
    kept = trainer.optimizer
    try:
        optimizer = trainer.create_optimizer()
        result = find_lr(
            trainer.model,
            loader,
            settings,
            loss_fn=ModelLoss(),
            optimizer=optimizer,
            eval_data=evaluation,
            on_step=on_step,
        )
    finally:
        trainer.optimizer = kept
    if plot is not None:
        from lrkit.plots.rangetest import plot_range_test

        plot_range_test(result, Path(plot))
    return result


def trainer_settings(args: Any) -> RangeTestSettings:
    """lrkit's range-test settings at a ``TrainingArguments``' per-device batch size,
    gradient accumulation and seed (every other field lrkit's default)."""
    return RangeTestSettings(
        batch_size=args.per_device_train_batch_size,
        accumulation_steps=args.gradient_accumulation_steps,
        seed=args.seed,
    )


class NoiseScaleCallback(TrainerCallback):
    """Logs the gradient noise scale of ``trainer``'s model as it trains (see the module).

    Args:
        trainer: the ``Trainer`` it measures (its model, training set, collator and
            ``compute_loss``) and logs through (``Trainer.log``); add the callback to it.
        every_n_steps: a measurement after the first optimizer step and after every
            ``every_n_steps``-th (global steps 1, n, 2n, ...).
        batch_size: B_small, the examples of each probe batch; the Trainer's
            ``per_device_train_batch_size`` by default.
        groups, big_factor, smoothing: the probe's (``noise.probe``).
        seed: of the probe's own order over the training set; the Trainer's seed by default.
    """

    def __init__(
        self,
        trainer: Any = None,
        *,
        every_n_steps: int = EVERY_N_STEPS,
        batch_size: int | None = None,
        groups: int = GROUPS,
        big_factor: int = BIG_FACTOR,
        smoothing: float = SMOOTHING,
        seed: int | None = None,
    ) -> None:
        if trainer is None:
            raise LrkitValueError(
                "NoiseScaleCallback logs through its Trainer: build it from the Trainer and "
                "add it, trainer.add_callback(NoiseScaleCallback(trainer))"
            )
        if trainer.train_dataset is None:
            raise LrkitValueError("the Trainer has no train_dataset to measure the noise scale on")
        self.trainer = trainer
        self.every_n_steps = check.positive_int("every_n_steps", every_n_steps)
        if not hasattr(trainer.train_dataset, "__len__"):
            raise LrkitValueError(
                "the Trainer's train_dataset has no length: the noise probe draws shuffled "
                "batches from a map-style dataset"
            )
        dataset = _pruned(trainer, trainer.train_dataset, "training")
        args = trainer.args
        batch_size = check.int_in(
            "batch_size",
            args.per_device_train_batch_size if batch_size is None else batch_size,
            1,
            len(dataset),
            "the examples of the Trainer's train_dataset",
        )
        seed = check.seed("seed", args.seed if seed is None else seed)
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
            collate_fn=trainer.data_collator,
        )
        self.probe: NoiseProbe[Any] = NoiseProbe(
            trainer.model,
            self._loss,
            loader,
            batch_size,
            groups=groups,
            big_factor=big_factor,
            smoothing=smoothing,
        )

    @property
    def readings(self) -> list[NoiseReading]:
        """Every measurement so far and the smoothed figures after it, oldest first."""
        return self.probe.readings

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Refuses a Trainer other than its own; measures the model that trains (a
        ``model_init`` builds a new one at ``train()``)."""
        if state is not self.trainer.state:
            raise LrkitValueError(
                "this NoiseScaleCallback was built for another Trainer: build one from the "
                "Trainer it is added to"
            )
        self.probe.module = self.trainer.model

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """After the optimizer step (its gradients already zeroed): measure and log, at the
        first global step and every ``every_n_steps``-th."""
        step = state.global_step
        if step != 1 and step % self.every_n_steps != 0:
            return
        metrics = self.probe.measure().metrics()
        if metrics:
            # Trainer.log appends to state.log_history at this global step, then hands the
            # figures to every callback's on_log, which is how report_to's reporters get them.
            # Its on_log clears should_log, which DefaultFlowCallback may have set for the
            # Trainer's own log (loss, learning rate) at this step: that log is kept.
            should_log = control.should_log
            self.trainer.log(metrics)
            control.should_log = should_log

    def _loss(self, batch: Any) -> torch.Tensor:
        """The Trainer's loss of one batch as its training step computes it (moved to its
        device, under its autocast), without ``num_items_in_batch``: the mean over the batch."""
        trainer = self.trainer
        inputs = trainer._prepare_inputs(batch)
        with trainer.compute_loss_context_manager():
            loss: torch.Tensor = trainer.compute_loss(self.probe.module, inputs)
        return loss


def _pruned(trainer: Any, dataset: Any, description: str) -> Any:
    """``dataset`` with only the columns the model's ``forward`` takes, as the ``Trainer``
    keeps them (a ``datasets.Dataset``; any other dataset as it is)."""
    remove = getattr(trainer, "_remove_unused_columns", None)
    if remove is not None and hasattr(dataset, "column_names"):
        return remove(dataset, description=description)
    return dataset


def _evaluation(trainer: Any, batch_size: int, examples: int) -> TensorData | None:
    """The first ``examples`` of the evaluation set, collated and held in memory."""
    dataset = trainer.eval_dataset
    if dataset is None or examples <= 0:
        return None
    dataset = _pruned(trainer, dataset, "evaluation")
    head = Subset(dataset, range(min(examples, len(dataset))))
    loader = DataLoader(head, batch_size=batch_size, collate_fn=trainer.data_collator)
    # Iterating a DataLoader draws its base seed from the global RNG (and a collator may draw
    # too): the caller's RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        return named_data(loader)
