"""The gradient noise scale (McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of
Large-Batch Training"): B_simple = tr(Sigma) / |G|^2, where G is the true gradient and Sigma
the covariance of one example's gradient.

Two estimators, both unbiased for tr(Sigma) and |G|^2 (their ratio is consistent):

- per-example: the gradients of single examples (``torch.func``: ``vmap`` of ``grad``) of a
  batch of B give, with g_bar their mean,
  tr(Sigma) ~ sum_i |g_i - g_bar|^2 / (B - 1)  and  |G|^2 ~ |g_bar|^2 - tr(Sigma) / B;
- two batch sizes (the paper's appendix A.1, for models too large for per-example gradients):
  with |G_small|^2 the mean squared norm of k gradients over B_small examples each and
  |G_big|^2 the squared norm of their mean (B_big = k B_small examples),
  |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small),
  tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big).

A measurement pools several independent groups (batches, or sets of k batches) and gives the
ratio of the pooled means, with a jackknife standard error over the groups. Neither estimator
touches the model's parameters or ``.grad``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from lrkit.data.features import Inputs
from lrkit.errors import LrkitValueError
from lrkit.training.evaluate import LossFn
from lrkit.training.outputs import batch_loss, output_tensor

Batch = tuple[Inputs, torch.Tensor]
B = TypeVar("B")
PER_EXAMPLE_BUDGET = 256 * 2**20
"""Bytes of per-example gradients (chunk x parameters x 4) the auto choice allows."""


@dataclass(frozen=True)
class NoiseEstimate:
    """One measurement of the noise scale."""

    b_simple: float
    """tr(Sigma) / |G|^2; inf when the estimate of |G|^2 is not positive."""
    b_simple_stderr: float
    """Jackknife standard error over the groups (nan with one group)."""
    grad_norm_sq: float
    """|G|^2 (unbiased)."""
    trace_sigma: float
    """tr(Sigma) (unbiased)."""
    examples: int
    estimator: str


def ratio_with_jackknife(traces: Sequence[float], norms: Sequence[float]) -> tuple[float, float]:
    """(mean(traces) / mean(norms), its jackknife standard error over the groups).

    The leave-one-out ratios r_j = (T - t_j) / (N - n_j) give
    stderr = sqrt((m - 1) / m * sum_j (r_j - mean r)^2) over m groups."""
    m = len(traces)
    total_t, total_n = math.fsum(traces), math.fsum(norms)
    ratio = total_t / total_n if total_n > 0 else math.inf
    if m < 2 or not math.isfinite(ratio):
        return ratio, math.nan
    leave_out = [
        (total_t - t) / (total_n - n) if total_n - n > 0 else math.inf
        for t, n in zip(traces, norms, strict=True)
    ]
    if not all(math.isfinite(r) for r in leave_out):
        return ratio, math.inf
    mean = math.fsum(leave_out) / m
    return ratio, math.sqrt((m - 1) / m * math.fsum((r - mean) ** 2 for r in leave_out))


def _estimate(traces: list[float], norms: list[float], examples: int, kind: str) -> NoiseEstimate:
    ratio, stderr = ratio_with_jackknife(traces, norms)
    m = len(traces)
    return NoiseEstimate(ratio, stderr, math.fsum(norms) / m, math.fsum(traces) / m, examples, kind)


def per_example_estimate(
    model: nn.Module,
    loss_fn: LossFn,
    sample: Batch,
    full: Batch | None = None,
    chunk: int = 128,
) -> NoiseEstimate:
    """B_simple from the per-example gradients of ``sample`` (at least 2 examples).

    With ``full`` (the training data), |G|^2 is exact: the squared norm of the mean gradient
    over all of it, and tr(Sigma) = mean_i |g_i|^2 - |G|^2 with the standard error of the
    sample mean; the error of B_simple is then that of tr(Sigma) over |G|^2. Without it, the
    unbiased pair above over the whole sample, with a jackknife over chunks."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss_one(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = output_tensor(functional_call(model, (p, buffers), (x.unsqueeze(0),)))
        return loss_fn(out, y.unsqueeze(0))

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0), randomness="different")
    x, y = sample
    assert isinstance(x, torch.Tensor), "named inputs take the two-batch estimator"
    n = int(x.shape[0])
    squares: list[torch.Tensor] = []
    sums: list[dict[str, torch.Tensor]] = []
    for start in range(0, n, chunk):
        grads = per_example(params, x[start : start + chunk], y[start : start + chunk])
        squares.append(sum(g.flatten(1).pow(2).sum(1, dtype=torch.float64) for g in grads.values()))
        if full is None:
            sums.append({name: g.sum(0, dtype=torch.float64) for name, g in grads.items()})
    square = torch.cat(squares)
    mean_square = float(square.mean())
    if full is not None:
        norm = sum(float(g.pow(2).sum()) for g in full_gradient(model, loss_fn, full))
        trace = mean_square - norm
        stderr_trace = float(square.std()) / math.sqrt(n)
        ratio = trace / norm if norm > 0 else math.inf
        return NoiseEstimate(ratio, stderr_trace / norm, norm, trace, n, "per-example")
    # Chunks as groups: each chunk's (sum of squares, summed gradient) left out in turn.
    traces, norms = [], []
    for sq, total in zip(squares, sums, strict=True):
        b = int(sq.shape[0])
        mean_sq = sum(float((t / b).pow(2).sum()) for t in total.values())
        chunk_trace = (float(sq.sum()) - b * mean_sq) / (b - 1)
        traces.append(chunk_trace)
        norms.append(mean_sq - chunk_trace / b)
    return _estimate(traces, norms, n, "per-example")


def full_gradient(
    model: nn.Module, loss_fn: LossFn, data: Batch, chunk: int = 4096
) -> list[torch.Tensor]:
    """The gradient of the mean loss over all of ``data`` (in chunks, float64)."""
    x, y = data
    n = int(x.shape[0])
    total: list[torch.Tensor] | None = None
    for start in range(0, n, chunk):
        part = _gradient(model, loss_fn, x[start : start + chunk], y[start : start + chunk])
        weight = min(chunk, n - start) / n
        scaled = [g * weight for g in part]
        total = scaled if total is None else [t + g for t, g in zip(total, scaled, strict=True)]
    assert total is not None
    return total


def _gradient(model: nn.Module, loss_fn: LossFn, x: Inputs, y: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = batch_loss(model, loss_fn, x, y)
        return [g.detach().double() for g in torch.autograd.grad(loss, params)]


def two_batch_estimate(
    model: nn.Module, loss_fn: LossFn, groups: Sequence[Sequence[Batch]]
) -> NoiseEstimate:
    """B_simple from gradients at two batch sizes: each group is k batches of B_small
    examples (k >= 2), whose mean gradient is the one over B_big = k B_small."""
    return two_batch_of(
        lambda batch: _gradient(model, loss_fn, *batch),
        groups,
        [int(group[0][0].shape[0]) for group in groups],
    )


def two_batch_of(
    gradient: Callable[[B], list[torch.Tensor]],
    groups: Sequence[Sequence[B]],
    small: Sequence[int],
) -> NoiseEstimate:
    """The two-batch estimate from any batches: ``gradient(batch)`` is the gradient of the
    mean loss over one batch, group i is k >= 2 batches of ``small[i]`` examples each (their
    mean gradient is the one over k ``small[i]``); a trainer's own batches and loss (a
    Lightning ``training_step``) go in as they come."""
    traces, norms = [], []
    examples = 0
    for group, b_small in zip(groups, small, strict=True):
        k = len(group)
        big = k * b_small
        grads = [gradient(batch) for batch in group]
        small_sq = math.fsum(sum(float(g.pow(2).sum()) for g in gs) for gs in grads) / k
        mean = [torch.stack(parts).mean(0) for parts in zip(*grads, strict=True)]
        big_sq = sum(float(g.pow(2).sum()) for g in mean)
        norm, trace = two_batch_pair(small_sq, big_sq, b_small, big)
        norms.append(norm)
        traces.append(trace)
        examples += big
    return _estimate(traces, norms, examples, "two-batch")


def two_batch_pair(small_sq: float, big_sq: float, small: int, big: int) -> tuple[float, float]:
    """(|G|^2, tr(Sigma)), both unbiased, from the mean squared norm ``small_sq`` of
    gradients over ``small`` examples and the squared norm ``big_sq`` of one over ``big``."""
    norm = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1.0 / small - 1.0 / big)
    return norm, trace


def two_batch_from_norms(
    small_sq: Sequence[float],
    big_sq: Sequence[float],
    small: Sequence[int],
    factor: int,
    estimator: str = "two-batch",
) -> NoiseEstimate:
    """The two-batch estimate from squared norms measured elsewhere, one group a step: step
    i's ``small_sq[i]`` is the mean squared norm of ``factor`` gradients over ``small[i]``
    examples each, ``big_sq[i]`` the squared norm of their mean. A data-parallel job measures
    both for free (``training.distributed.NoiseHook``: the ranks' own gradients and the
    all-reduced one, ``factor`` the world size). No steps give nan."""
    if not small_sq:
        return NoiseEstimate(math.nan, math.nan, math.nan, math.nan, 0, estimator)
    traces, norms = [], []
    for s_sq, b_sq, b in zip(small_sq, big_sq, small, strict=True):
        norm, trace = two_batch_pair(s_sq, b_sq, b, factor * b)
        norms.append(norm)
        traces.append(trace)
    return _estimate(traces, norms, factor * sum(small), estimator)


def choose_estimator(
    model: nn.Module, requested: str, chunk: int = 64, named_inputs: bool = False
) -> str:
    """per-example where its gradients fit ``PER_EXAMPLE_BUDGET``, the model has no
    buffers (batch statistics tie examples together) and its inputs are one tensor (a model
    called with named inputs is differentiated per batch); else two-batch."""
    if named_inputs:
        if requested == "per-example":
            raise LrkitValueError(
                "the per-example estimator needs one tensor of inputs; with named inputs "
                "(a dict batch) use two-batch",
                cli_message="--estimator per-example needs one tensor of inputs; with named "
                "inputs (a dict batch) use --estimator two-batch",
            )
        return "two-batch"
    if requested != "auto":
        return requested
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    small = chunk * parameters * 4 <= PER_EXAMPLE_BUDGET
    return "per-example" if small and next(model.buffers(), None) is None else "two-batch"


class NoiseMeter:
    """Measurements during training: each ``measure`` draws fresh examples (its own seeded
    generator, so training's data order is untouched) and keeps exponential moving averages
    of tr(Sigma) and |G|^2 separately, as the paper advises, for a smoothed B_simple."""

    def __init__(
        self,
        data_x: Inputs,
        data_y: torch.Tensor,
        estimator: str,
        batch_size: int,
        groups: int,
        big_factor: int = 8,
        smoothing: float = 0.5,
        seed: int = 0,
    ):
        self.x, self.y = data_x, data_y
        self.estimator = estimator
        self.batch_size, self.groups, self.big_factor = batch_size, groups, big_factor
        self.examples = groups * batch_size
        self.smoother = NoiseSmoother(smoothing)
        self.generator = torch.Generator().manual_seed(seed)

    def measure(self, model: nn.Module, loss_fn: LossFn) -> tuple[NoiseEstimate, float]:
        """(this measurement, the smoothed B_simple so far)."""
        was_training = model.training
        model.train()
        devices = [self.x.device] if self.x.device.type == "cuda" else []
        try:
            # Dropout draws from the global RNG; training must not see that a measurement ran.
            with torch.random.fork_rng(devices=devices):
                if self.estimator == "per-example":
                    found = per_example_estimate(
                        model, loss_fn, self._batch(self.examples), (self.x, self.y)
                    )
                else:
                    found = two_batch_estimate(
                        model,
                        loss_fn,
                        [
                            [self._batch(self.batch_size) for _ in range(self.big_factor)]
                            for _ in range(self.groups)
                        ],
                    )
        finally:
            model.train(was_training)
        return found, self.smoother.add(found)

    def _batch(self, size: int) -> Batch:
        index = torch.randint(len(self.x), (size,), generator=self.generator)
        index = index.to(self.x.device)
        return self.x[index], self.y[index]


class NoiseSmoother:
    """Exponential moving averages of tr(Sigma) and |G|^2 over measurements, kept apart as
    the paper advises; their ratio is the smoothed B_simple."""

    def __init__(self, smoothing: float = 0.5) -> None:
        self.smoothing = smoothing
        self._trace = self._norm = 0.0
        self._count = 0

    def add(self, found: NoiseEstimate) -> float:
        """Take in a measurement (an empty one, of no examples, is skipped); the smoothed
        B_simple so far (nan before any)."""
        if found.examples > 0:
            beta = self.smoothing
            self._trace = beta * self._trace + (1 - beta) * found.trace_sigma
            self._norm = beta * self._norm + (1 - beta) * found.grad_norm_sq
            self._count += 1
        if self._count == 0:
            return math.nan
        # The moving averages' start-up bias is the same factor in both; the ratio drops it.
        return self._trace / self._norm if self._norm > 0 else math.inf
