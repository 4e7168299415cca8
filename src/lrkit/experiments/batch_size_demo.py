"""The batch-size-schedule demonstration of ``lrkit reproduce --bs-schedule``.

S. L. Smith, P.-J. Kindermans, C. Ying & Q. V. Le, "Don't Decay the Learning Rate, Increase
the Batch Size" (ICLR 2018): SGD's noise scale is lr * N / B, so dividing the learning rate
by F and multiplying the batch size by F lower it alike; the second takes F times fewer
parameter updates for the same examples after each step.

Two arms, the same model, seed, data order and number of epochs (so the same examples seen):

- ``decay``: lr BASE_LR at batch BASE_BATCH_SIZE, divided by FACTOR at each milestone epoch
  (a ``multistep`` schedule on the iteration clock, milestones = epoch * iterations per
  epoch, since the batch size, hence the iterations per epoch, is fixed);
- ``increase``: the same lr throughout, the batch multiplied by FACTOR at the same epochs.

Here: the plan of the two arms and the summary of their results (plain arithmetic on the
stored curves); the CLI runs the arms as two named sweeps of one store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.schedules.batch_size import batch_size_steps, increase_batch_instead_of_decay
from lrkit.training.records import CurvePoint

BASE_LR = 0.5
"""The textbook grid's best lr at batch 16 (0.9660 final validation accuracy,
docs/guides/sweeps.md), and the lr its batch-size grid shares: a rate known to train this
network well at this batch."""
BASE_BATCH_SIZE = 16
"""The smallest batch of the textbook's grids: two steps of FACTOR reach 400, still a small
fraction of the training data, so the batch grows at every milestone without a cap."""
FACTOR = 5
"""The step's divisor / the batch's growth (the paper's factor)."""


def milestones_for(epochs: int) -> tuple[int, ...]:
    """The step epochs: at 1/3 and 2/3 of the run, rounded to whole epochs (the batch size
    changes between epochs), duplicates dropped; 30 epochs -> (10, 20), 2 -> (1,)."""
    if epochs < 2:
        raise InvalidParameterError("epochs", "a whole number >= 2 with --bs-schedule", epochs)
    steps = sorted({min(max(round(epochs * k / 3), 1), epochs - 1) for k in (1, 2)})
    return tuple(steps)


def whole_epochs(epochs: float) -> int:
    """``--epochs`` as a whole number >= 2: a fractional last epoch would end the arms after
    different numbers of examples (their last batches differ in size)."""
    if not math.isfinite(epochs) or epochs != int(epochs) or epochs < 2:
        raise InvalidParameterError("epochs", "a whole number >= 2 with --bs-schedule", epochs)
    return int(epochs)


@dataclass(frozen=True)
class Arm:
    """One arm: how it is run as a sweep of one trial."""

    name: str
    """decay or increase; the sweep's name in the store is ``bs-`` + name."""
    lr: float
    batch_size: int
    schedule: str | None
    """The sweep's ``--schedule`` (lr on the iteration clock), or None for a constant lr."""
    batch_size_schedule: str | None
    """The sweep's ``--batch-size-schedule``, or None for a fixed batch size."""
    lrs: tuple[float, ...]
    """The lr in each phase (before the first milestone, after it, ...)."""
    batch_sizes: tuple[int, ...]
    """The batch size in each phase."""

    @property
    def sweep(self) -> str:
        return f"bs-{self.name}"

    def describe(self) -> str:
        lrs = " -> ".join(f"{v:g}" for v in self.lrs)
        sizes = " -> ".join(str(b) for b in self.batch_sizes)
        return f"lr {lrs}, batch {sizes}"


@dataclass(frozen=True)
class DemoPlan:
    """Both arms, their shared length and milestones."""

    epochs: int
    milestones: tuple[int, ...]
    factor: float
    n_train: int
    decay: Arm
    increase: Arm

    @property
    def arms(self) -> tuple[Arm, Arm]:
        return (self.decay, self.increase)


def _spec_list(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def plan_demo(
    epochs: float,
    n_train: int,
    base_lr: float = BASE_LR,
    base_batch_size: int = BASE_BATCH_SIZE,
    factor: float = FACTOR,
) -> DemoPlan:
    """The two arms for ``epochs`` epochs over ``n_train`` training examples.

    Refused (naming the option) when the epochs are not whole, or when the grown batch would
    exceed the training data: the increase arm would then have to decay its lr instead
    (Smith et al.'s hybrid), and the two arms would no longer match step for step."""
    length = whole_epochs(epochs)
    steps = milestones_for(length)
    plan = increase_batch_instead_of_decay(base_lr, base_batch_size, factor, steps, n_train)
    if plan.decay_milestones:
        largest = round(base_batch_size * factor ** len(steps))
        raise LrkitValueError(
            f"--bs-schedule grows the batch to {largest}, more than the {n_train} training "
            "examples; use more training data (--data-dir, --val-fraction)"
        )
    iterations = math.ceil(n_train / base_batch_size)
    phases = range(len(steps) + 1)
    decay = Arm(
        name="decay",
        lr=base_lr,
        batch_size=base_batch_size,
        schedule=(
            f"multistep:gamma={1 / factor!r},"
            f"milestones={_spec_list([m * iterations for m in steps])}"
        ),
        batch_size_schedule=None,
        lrs=tuple(base_lr / factor**k for k in phases),
        batch_sizes=(base_batch_size,),
    )
    grow = batch_size_steps(base_batch_size, factor, steps)
    increase = Arm(
        name="increase",
        lr=base_lr,
        batch_size=base_batch_size,
        schedule=None,
        batch_size_schedule=f"factor={factor!r},milestones={_spec_list(steps)}",
        lrs=(base_lr,),
        batch_sizes=tuple(grow(s) for s in (0, *steps)),
    )
    return DemoPlan(length, steps, factor, n_train, decay, increase)


@dataclass(frozen=True)
class ArmResult:
    """What one arm did."""

    arm: Arm
    status: str
    updates: int
    """Parameter updates: the iteration of the trial's last check (its last step)."""
    epochs: float
    """Epochs trained at the last check."""
    examples: int
    """Training examples seen: every whole epoch shows each example once."""
    final_val_accuracy: float | None
    best_val_accuracy: float | None
    test_accuracy: float | None
    seconds: float | None
    points: tuple[CurvePoint, ...]


def arm_result(
    arm: Arm,
    n_train: int,
    status: str,
    points: Sequence[CurvePoint],
    final_val_accuracy: float | None,
    best_val_accuracy: float | None,
    test_accuracy: float | None,
    seconds: float | None,
) -> ArmResult:
    last = points[-1] if points else CurvePoint(0, 0.0, math.nan, math.nan, math.nan)
    return ArmResult(
        arm=arm,
        status=status,
        updates=last.iteration,
        epochs=last.epoch,
        examples=round(last.epoch * n_train),
        final_val_accuracy=final_val_accuracy,
        best_val_accuracy=best_val_accuracy,
        test_accuracy=test_accuracy,
        seconds=seconds,
        points=tuple(points),
    )


def _accuracy(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


HEADER = (
    "arm",
    "schedule",
    "status",
    "epochs",
    "updates",
    "final val acc",
    "best val acc",
    "test acc",
    "seconds",
)


def table_rows(results: Sequence[ArmResult]) -> list[list[str | int | float]]:
    return [
        [
            r.arm.name,
            r.arm.describe(),
            r.status,
            f"{r.epochs:g}",
            r.updates,
            _accuracy(r.final_val_accuracy),
            _accuracy(r.best_val_accuracy),
            _accuracy(r.test_accuracy),
            "-" if r.seconds is None else f"{r.seconds:.1f}",
        ]
        for r in results
    ]


def update_ratio(decay: ArmResult, increase: ArmResult) -> float | None:
    """The increase arm's updates over the decay arm's."""
    return increase.updates / decay.updates if decay.updates else None


def verdict(plan: DemoPlan, decay: ArmResult, increase: ArmResult) -> str:
    """One sentence on the comparison."""
    ratio = update_ratio(decay, increase)
    if ratio is None or decay.status != "done" or increase.status != "done":
        return "no comparison: an arm did not finish (see the status column)"
    gap = (increase.final_val_accuracy or 0.0) - (decay.final_val_accuracy or 0.0)
    return (
        f"same {plan.epochs} epochs ({decay.examples} examples seen by each arm): growing the "
        f"batch took {increase.updates} updates against {decay.updates} for the lr decay "
        f"({ratio:.3f}x, {1 / ratio:.2f}x fewer), final validation accuracy "
        f"{gap:+.4f} against the decay"
    )


def to_json(plan: DemoPlan, decay: ArmResult, increase: ArmResult) -> dict[str, Any]:
    def arm(r: ArmResult) -> dict[str, Any]:
        return {
            "name": r.arm.name,
            "sweep": r.arm.sweep,
            "lrs": list(r.arm.lrs),
            "batch_sizes": list(r.arm.batch_sizes),
            "schedule": r.arm.schedule,
            "batch_size_schedule": r.arm.batch_size_schedule,
            "status": r.status,
            "updates": r.updates,
            "epochs": r.epochs,
            "examples": r.examples,
            "final_val_accuracy": r.final_val_accuracy,
            "best_val_accuracy": r.best_val_accuracy,
            "test_accuracy": r.test_accuracy,
            "seconds": r.seconds,
        }

    return {
        "epochs": plan.epochs,
        "milestones": list(plan.milestones),
        "factor": plan.factor,
        "n_train": plan.n_train,
        "arms": [arm(decay), arm(increase)],
        "update_ratio": update_ratio(decay, increase),
    }
