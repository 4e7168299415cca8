"""The memory batch and the optimization batch (torch-free): a batch of B examples that does
not fit trains as k micro-batches of B / k, their gradients accumulated
(``training.step.accumulate``), so that every step is still the step of B.

The optimization sees B: the same batches, the same steps, the same lr. Only the memory
falls, to a micro-batch's activations; the time per example stays about what it is at the
micro-batch (k forward and backward passes a step). That is the opposite of halving the batch
until it fits and leaving the accumulation alone (Hugging Face's ``auto_find_batch_size``),
which changes the optimization silently: a learning rate advised for B is not the one for
B / 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lrkit.errors import LrkitValueError


@dataclass(frozen=True)
class MicroBatching:
    """How a batch of ``batch_size`` trains: ``accumulation_steps`` micro-batches of
    ``micro_batch_size`` examples a step."""

    batch_size: int
    micro_batch_size: int
    accumulation_steps: int
    largest_fitting: int | None = None
    """The largest batch that fits, where it was measured (``batchsize.ceiling``)."""
    method: str = "given"
    """How: ``probe`` or ``memory`` (``batchsize.ceiling``), or ``given`` (the caller's k)."""

    def trainer_arguments(self) -> dict[str, int]:
        """The same batching in a Hugging Face ``TrainingArguments`` (one device)."""
        return {
            "per_device_train_batch_size": self.micro_batch_size,
            "gradient_accumulation_steps": self.accumulation_steps,
        }

    def describe(self) -> str:
        """One line: how the batch trains, and why."""
        if self.accumulation_steps == 1:
            head = f"batch {self.batch_size} trains whole"
        else:
            head = (
                f"batch {self.batch_size} trains as {self.accumulation_steps} micro-batches "
                f"of {self.micro_batch_size}, gradients accumulated (the same steps)"
            )
        if self.largest_fitting is not None:
            head += f"; the largest batch that fits: {self.largest_fitting} ({self.method})"
        return head

    def to_json(self) -> dict[str, Any]:
        return {
            "micro_batch_size": self.micro_batch_size,
            "accumulation_steps": self.accumulation_steps,
            "largest_fitting_batch": self.largest_fitting,
            "method": self.method,
            "hf_trainer": self.trainer_arguments(),
        }


def micro_batching(batch_size: int, largest: int, method: str, at_least: int = 1) -> MicroBatching:
    """The fewest accumulation steps k >= ``at_least`` that divide ``batch_size`` into
    micro-batches of at most ``largest`` examples (every micro-batch the same size, so each
    step is exactly the step of the whole batch); refused where not even one example fits."""
    if not 1 <= at_least <= batch_size:
        raise ValueError(f"need 1 <= at_least <= {batch_size}, got {at_least}")
    if largest < 1:
        raise LrkitValueError(
            f"not even one example fits in memory ({method}); give --memory higher, or a "
            "smaller model",
            cli_message=f"--batch-size: not even one example fits in memory ({method}); "
            "give --memory higher",
        )
    k = at_least
    while batch_size % k or batch_size // k > largest:
        k += 1
    return MicroBatching(batch_size, batch_size // k, k, largest, method)
