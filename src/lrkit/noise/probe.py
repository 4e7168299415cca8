"""The gradient noise scale measured inside another trainer's loop (Lightning's, the Hugging
Face ``Trainer``'s): ``NoiseProbe``.

A measurement is the two-batch estimate (``estimators.two_batch_of``; McCandlish et al. 2018,
appendix A.1): ``groups`` groups of ``big_factor`` batches of B_small examples, drawn from the
probe's own iterator over the training data, each batch's gradient taken with
``torch.autograd.grad`` of the trainer's own loss. It is smoothed as ``lrkit noise`` smooths
it (``NoiseSmoother``: moving averages of tr(Sigma) and |G|^2 kept apart), and the smoothed
B_simple is the critical batch size it implies (B_crit ~ B_noise ~ B_simple).

Training cannot tell that a measurement ran: the parameters' ``.grad`` and values are not
touched, the buffers (BatchNorm's running statistics, which forward passes in training mode
update) are put back, every global RNG is restored afterwards (torch's: dropout, a collator's
masking, the data order of a loader without its own generator; Python's and numpy's, which
some collators draw from), and every submodule is put back in the mode it was in. The cost
is ``groups`` x ``big_factor`` forward and backward passes of B_small examples per
measurement.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch
from torch import nn

from lrkit import validation as check
from lrkit.errors import LrkitValueError
from lrkit.noise.estimators import NoiseEstimate, NoiseSmoother, two_batch_of

B = TypeVar("B")

GROUPS = 4
"""Groups a measurement pools (its jackknife standard error is over them)."""
BIG_FACTOR = 8
"""B_big / B_small: the batches of a group."""
SMOOTHING = 0.5
"""The weight of the past in the moving averages (``lrkit noise``'s)."""

PREFIX = "lrkit/"
"""The prefix of every metric a probe logs."""


@dataclass(frozen=True)
class NoiseReading:
    """One measurement and the smoothed figures after it."""

    estimate: NoiseEstimate
    b_simple_smoothed: float

    @property
    def critical_batch_size(self) -> float:
        """The batch size past which more examples a step buy little: the smoothed B_simple."""
        return self.b_simple_smoothed

    def metrics(self) -> dict[str, float]:
        """What a trainer logs: ``lrkit/b_simple`` (smoothed, as ``lrkit noise`` reports it),
        ``lrkit/b_simple_raw`` (this measurement) with its standard error, and
        ``lrkit/critical_batch_size``; figures that are not finite are left out."""
        figures = {
            "b_simple": self.b_simple_smoothed,
            "b_simple_raw": self.estimate.b_simple,
            "b_simple_stderr": self.estimate.b_simple_stderr,
            "critical_batch_size": self.critical_batch_size,
        }
        return {PREFIX + name: v for name, v in figures.items() if math.isfinite(v)}


class NoiseProbe(Generic[B]):
    """Measures B_simple of ``module`` at its current weights on demand (see the module).

    Args:
        module: the model whose trainable parameters are differentiated.
        loss: the mean loss of one batch, computed by the module as its trainer computes it
            (the batch moved to the module's device by ``loss`` itself).
        batches: where the probe's batches come from; its iterator is taken once and
            restarted (``iter`` again) when it ends, so a ``DataLoader`` cycles through epochs.
        batch_size: B_small, the examples of every batch it yields.
        groups, big_factor, smoothing: as the module's constants.
    """

    def __init__(
        self,
        module: nn.Module,
        loss: Callable[[B], torch.Tensor],
        batches: Iterable[B],
        batch_size: int,
        *,
        groups: int = GROUPS,
        big_factor: int = BIG_FACTOR,
        smoothing: float = SMOOTHING,
    ) -> None:
        check.positive_int("batch_size", batch_size)
        check_probe_settings(groups, big_factor, smoothing)
        self.module, self.loss = module, loss
        self.batches, self.batch_size = batches, batch_size
        self.groups, self.big_factor = groups, big_factor
        self.smoother = NoiseSmoother(smoothing)
        self._iterator: Iterator[B] | None = None
        self.readings: list[NoiseReading] = []

    def measure(self) -> NoiseReading:
        """One measurement of the model as it stands, kept in ``readings``."""
        module = self.module
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise LrkitValueError("the model has no trainable parameters to measure")
        modes = [(m, m.training) for m in module.modules()]
        devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
        buffers = [(b, b.detach().clone()) for b in module.buffers()]
        python_rng = random.getstate()
        numpy_rng = np.random.get_state(legacy=False)  # noqa: NPY002 (what collators draw from)
        try:
            with torch.random.fork_rng(devices=devices):
                module.train()
                groups = [
                    [self._next() for _ in range(self.big_factor)] for _ in range(self.groups)
                ]
                found = two_batch_of(
                    lambda batch: self._gradient(params, batch),
                    groups,
                    [self.batch_size] * self.groups,
                )
        finally:
            for m, mode in modes:  # each submodule's own (a frozen BatchNorm stays in eval)
                m.training = mode
            with torch.no_grad():
                for buffer, kept in buffers:
                    buffer.copy_(kept)
            random.setstate(python_rng)
            np.random.set_state(numpy_rng)  # noqa: NPY002
        reading = NoiseReading(found, self.smoother.add(found))
        self.readings.append(reading)
        return reading

    def _gradient(self, params: Sequence[torch.Tensor], batch: B) -> list[torch.Tensor]:
        with torch.enable_grad():
            value = self.loss(batch)
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise LrkitValueError(
                    f"the noise probe's loss must be a scalar tensor; got {_describe(value)}"
                )
            grads = torch.autograd.grad(value, params, allow_unused=True)
        return [
            torch.zeros_like(p, dtype=torch.float64) if g is None else g.detach().double()
            for p, g in zip(params, grads, strict=True)
        ]

    def _next(self) -> B:
        if self._iterator is None:
            self._iterator = iter(self.batches)
        try:
            return next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.batches)
            try:
                return next(self._iterator)
            except StopIteration:
                raise LrkitValueError("the noise probe's data yields no batches") from None


def check_probe_settings(groups: int, big_factor: int, smoothing: float) -> None:
    """A probe's ``groups``, ``big_factor`` and ``smoothing`` (``NoiseProbe``), checked where
    they are given (a trainer's callback checks them before the probe exists)."""
    check.int_at_least("groups", groups, 2, "the standard error needs two groups")
    check.int_at_least("big_factor", big_factor, 2, "B_big must exceed B_small")
    check.float_in("smoothing", smoothing, 0.0, 1.0, low_open=False, high_open=True)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__
