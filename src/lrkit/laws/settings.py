"""What ``lrkit laws`` runs (torch-free, so the CLI builds it before torch loads): the ladder's
axes, where to forecast, how every run trains, each point's lr grid, the store, and the checks
to run. A frozen record of values the CLI has checked option by option, in the order it
reports them (``cli.laws_command``); the driver (``laws.driver.run_laws``) takes it whole."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lrkit.laws.points import Ladder
from lrkit.sweep.definition import SweepDefinition


@dataclass(frozen=True)
class LawsSettings:
    """A ladder of small runs and what to predict from it.

    Args:
        model: the family, ``module:factory``, called with the size (each point's runs
            record ``{model}@{size}``).
        sizes: the ladder's widths (``axis`` width) or depths (``axis`` depth).
        epochs: the horizons each run trains for (a ladder of them, or one).
        batch_sizes: the training batch sizes (a ladder of them, or one).
        examples: training-set sizes, the first n examples (None: all of them).
        predict_size, predict_examples, predict_epochs, predict_batch_size: where to
            predict the best lr (each None: the ladder's largest value; a batch size only
            where the ladder varies it alone); with all four None, no forecast.
        data, loss, val_fraction: the data's and loss's names as every run's definition
            records them, and the share of the training set held out for validation.
        optimizer, momentum, weight_decay, schedule, seed: how every run trains
            (``sweep.definition.SweepDefinition``).
        lr: the centre of every point's lr grid (None: the range test's suggestion at the
            smallest point).
        octaves, per_octave, repeats: each point's grid (``laws.ladder``).
        branch: branch the horizons of an ``epochs`` ladder off one run per lr
            (``laws.branching``; on the sequential engine only).
        store: the sweep store (SQLite); ``name``: prefix of the points' sweep names.
        device: auto, cpu or cuda.
        check_transfer: also run the coordinate check (``laws.transfer``; a width ladder).
    """

    model: str
    sizes: tuple[int, ...]
    axis: str = "width"
    epochs: tuple[float, ...] = (2.0,)
    batch_sizes: tuple[int, ...] = (128,)
    examples: tuple[int, ...] | None = None
    predict_size: int | None = None
    predict_examples: int | None = None
    predict_epochs: float | None = None
    predict_batch_size: int | None = None
    data: str = "mnist"
    loss: str = "cross_entropy"
    val_fraction: float = 1 / 12
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str | None = None
    seed: int = 0
    lr: float | None = None
    octaves: int = 2
    per_octave: int = 4
    repeats: int = 1
    branch: bool = True
    store: Path = Path("laws.sqlite")
    name: str = "laws"
    device: str = "auto"
    check_transfer: bool = False

    def ladder(self, n_train: int) -> Ladder:
        """The ladder's points on a training set of ``n_train`` examples (all of them where
        ``examples`` is None)."""
        return Ladder(
            self.sizes, self.examples or (n_train,), self.epochs, self.batch_sizes, self.axis
        )

    @property
    def forecasts(self) -> bool:
        """Whether a target was asked for (any ``predict_*``)."""
        asked = (self.predict_size, self.predict_examples, self.predict_epochs)
        return any(v is not None for v in (*asked, self.predict_batch_size))

    def definition(self) -> SweepDefinition:
        """How every run trains: up to the longest horizon, checked four times in the
        shortest (each point's own epochs and data: ``laws.ladder.point_definition``)."""
        return SweepDefinition(
            model=self.model,
            data=self.data,
            loss=self.loss,
            epochs=max(self.epochs),
            eval_every=min(self.epochs) / 4,
            val_fraction=self.val_fraction,
            optimizer=self.optimizer,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            batch_size_schedule=None,
            seed=self.seed,
        )
