"""The learning-rate range test for a Hugging Face ``Trainer``: ``find_lr_for_trainer``.

It runs lrkit's range test (``rangetest.find.find_lr``: its programs, narrowing rounds,
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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from lrkit.data.named import named_data
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.rangetest.find import OnRoundStep, find_lr
from lrkit.rangetest.result import RangeTestResult
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.training.outputs import ModelLoss

EVAL_EXAMPLES = 512
"""Evaluation examples whose loss the test measures after each held lr."""


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
