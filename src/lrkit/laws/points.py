"""Where a ladder's runs train (torch-free): its axes (the model's size, the horizon in
examples and epochs, the batch size) and the points, every combination of their values."""

from __future__ import annotations

from dataclasses import dataclass

from lrkit import validation as check
from lrkit.errors import LrkitValueError

SIZE_AXES = ("width", "depth")
MAX_EXAMPLES = 10**13
"""The most training examples a target may see: more than any training set holds (the largest
language models train on about 10^13 tokens)."""
MAX_SIZE = 10_000_000
"""The largest width or depth, of the ladder or a target: 500 times the widest transformer
trained (PaLM's d_model, 18,432); past it a size is a typo, and a factory's tensors overflow."""


def check_size(name: str, size: object) -> int:
    """A width or depth: an integer in [1, ``MAX_SIZE``]."""
    return check.int_in(name, size, 1, MAX_SIZE, "a model's width or depth")


@dataclass(frozen=True, order=True)
class Point:
    """Where one sweep of the ladder trains: the model's size, the horizon, the batch size."""

    size: int
    examples: int
    """Training examples (the first ``examples`` of the training set)."""
    epochs: float
    batch_size: int

    @property
    def seen(self) -> float:
        """D: the examples the run trains on, counted with repetition (examples x epochs)."""
        return self.examples * self.epochs


@dataclass(frozen=True)
class Ladder:
    """The axes of a ladder; every combination of their values is a point."""

    sizes: tuple[int, ...]
    examples: tuple[int, ...]
    epochs: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    axis: str = "width"
    """What the factory's argument is: width or depth."""

    def __post_init__(self) -> None:
        check.choice("axis", self.axis, SIZE_AXES)
        for option, values in (
            (f"{self.axis}s", self.sizes),
            ("examples", self.examples),
            ("batch_sizes", self.batch_sizes),
        ):
            if not values:
                raise LrkitValueError(f"--{option.replace('_', '-')}: give at least one value")
            for value in values:
                check.positive_int(option, value)
        for size in self.sizes:
            check_size(f"{self.axis}s", size)
        if not self.epochs:
            raise LrkitValueError("--epochs: give at least one value")
        for epochs in self.epochs:
            check.positive_float("epochs", epochs)
        if len(set(self.examples)) > 1 and len(set(self.epochs)) > 1:
            raise LrkitValueError(
                "--epochs and --examples: ladder one of them (the horizon D = examples x "
                "epochs), not both"
            )

    def points(self) -> tuple[Point, ...]:
        """Every combination, sizes outermost, horizons of one size and batch together."""
        return tuple(
            Point(size, n, e, b)
            for size in sorted(set(self.sizes))
            for n in sorted(set(self.examples))
            for b in sorted(set(self.batch_sizes))
            for e in sorted(set(self.epochs))
        )

    @property
    def varies(self) -> tuple[str, ...]:
        """The axes with more than one value, of: the size axis, examples, epochs, batch_size."""
        axes = (
            (self.axis, self.sizes),
            ("examples", self.examples),
            ("epochs", self.epochs),
            ("batch_size", self.batch_sizes),
        )
        return tuple(name for name, values in axes if len(set(values)) > 1)

    def sweep_name(self, prefix: str, point: Point) -> str:
        """``{prefix}-{axis}-{size}`` and the other varying axes' values."""
        parts = [f"{prefix}-{self.axis}-{point.size}"]
        if "examples" in self.varies:
            parts.append(f"examples-{point.examples}")
        if "epochs" in self.varies:
            parts.append(f"epochs-{point.epochs:g}")
        if "batch_size" in self.varies:
            parts.append(f"batch-{point.batch_size}")
        return "-".join(parts)
