"""What a sweep is: its definition (how every trial trains) and its grid (which trials).

The definition must match for a store's results to be comparable: resuming a sweep with a
different definition is refused, naming what differs. The grid may grow between runs (new
learning rates or batch sizes add trials); finished trials are never run again.

Sizes are bounded before anything is allocated: a grid of at most ``MAX_TRIALS`` trials, a
trial of at most ``validation.MAX_CHECKS`` checks.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lrkit import validation as check
from lrkit.errors import LrkitValueError, shown
from lrkit.training.optimizers import OPTIMIZERS

MAX_TRIALS = 100_000
"""Trials a grid holds at most (the textbook's four grids hold 14): the grid, the store's
rows and the report's tables grow with it."""


@dataclass(frozen=True)
class SweepDefinition:
    """Everything that decides how a trial trains, apart from its lr, batch size and repeat."""

    model: str
    data: str
    loss: str
    epochs: float
    eval_every: float
    val_fraction: float
    optimizer: str
    momentum: float
    weight_decay: float
    schedule: str | None
    batch_size_schedule: str | None
    seed: int

    def __post_init__(self) -> None:
        check.positive_float("epochs", self.epochs)
        check.epochs_between_checks("eval_every", self.eval_every, self.epochs)
        check.float_in("momentum", self.momentum, 0.0, 1.0, low_open=False, high_open=True)
        check.seed("seed", self.seed)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, stored: Mapping[str, Any]) -> list[str]:
        """``option: stored X, now Y`` for every field that differs from a stored definition."""
        now = self.to_json()
        keys = sorted(set(now) | set(stored))
        return [
            f"--{k.replace('_', '-')}: the store has {shown(stored.get(k))}, "
            f"this run {shown(now.get(k))}"
            for k in keys
            if stored.get(k) != now.get(k)
        ]


def make_definition(
    model: str,
    data_name: str,
    loss: str | None,
    epochs: float,
    eval_every: float,
    val_fraction: float,
    optimizer: str,
    momentum: float,
    weight_decay: float,
    schedule: str | None,
    batch_size_schedule: str | None,
    seed: int,
) -> SweepDefinition:
    """A sweep's definition from its options, as a store records it: the loss cross-entropy
    unless one is named, the optimizer one of ``training.optimizers.OPTIMIZERS``, the
    momentum kept for the momentum optimizer only (0 for the others), the weight decay not
    negative."""
    return SweepDefinition(
        model=model,
        data=data_name,
        loss=loss or "cross-entropy",
        epochs=epochs,
        eval_every=eval_every,
        val_fraction=val_fraction,
        optimizer=check.choice("optimizer", optimizer, OPTIMIZERS),
        momentum=momentum if optimizer == "momentum" else 0.0,
        weight_decay=check.nonnegative_float("weight_decay", weight_decay),
        schedule=schedule,
        batch_size_schedule=batch_size_schedule,
        seed=seed,
    )


@dataclass(frozen=True, order=True)
class TrialKey:
    """One trial of the grid."""

    batch_size: int
    lr: float
    repeat: int


def parse_grid(option: str, text: str, kind: type) -> tuple[Any, ...]:
    """``0.1,0.3,0.5`` -> (0.1, 0.3, 0.5): positive, no duplicates, no empty item, in the
    order given."""
    pieces = [p.strip() for p in text.split(",")]
    name = option.lstrip("-").replace("-", "_")
    if not any(pieces):
        raise LrkitValueError(f"{option} is empty; give comma-separated values, e.g. 0.1,0.3")
    if "" in pieces:
        raise LrkitValueError(
            f"{option} {shown(text)} has an empty value between commas; give comma-separated "
            "values, e.g. 0.1,0.3"
        )
    values = []
    for piece in pieces:
        try:
            value = kind(piece)
        except ValueError:
            value = piece  # refused below, with the requirement a number out of range gets
        values.append(
            check.positive_int(name, value) if kind is int else check.positive_float(name, value)
        )
    duplicates = sorted(v for v, n in Counter(values).items() if n > 1)
    if duplicates:
        raise LrkitValueError(
            f"{option} lists {', '.join(f'{d:g}' for d in duplicates)} more than once"
        )
    return tuple(values)


def product_grid(
    lrs: Sequence[float], batch_sizes: Sequence[int], repeats: int
) -> tuple[TrialKey, ...]:
    """Every (batch size, lr, repeat), batch sizes outermost (trials of a batch size together)."""
    check.positive_int("repeats", repeats)
    check_grid_size(
        len(lrs) * len(batch_sizes) * repeats,
        f"{len(lrs)} --lr x {len(batch_sizes)} --batch-size x {repeats} --repeats",
    )
    return tuple(
        TrialKey(b, lr, r) for r, b, lr in itertools.product(range(repeats), batch_sizes, lrs)
    )


def pairs_grid(pairs: Iterable[tuple[int, float]], repeats: int) -> tuple[TrialKey, ...]:
    """The trials of explicit (batch size, lr) pairs; a pair named twice runs once."""
    check.positive_int("repeats", repeats)
    unique = list(dict.fromkeys(pairs))
    check_grid_size(len(unique) * repeats, f"{len(unique)} pairs x {repeats} --repeats")
    return tuple(TrialKey(b, lr, r) for r in range(repeats) for b, lr in unique)


def check_grid_size(trials: int, product: str) -> None:
    """A grid of ``trials`` (made of ``product``), at most ``MAX_TRIALS``; checked before the
    grid is built."""
    if trials > MAX_TRIALS:
        raise LrkitValueError(
            f"the grid has {trials} trials ({product}); a sweep runs at most {MAX_TRIALS}"
        )
