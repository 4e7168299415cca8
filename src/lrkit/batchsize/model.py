"""The batch size for a budget, from the noise scale and the measured step time (torch-free).

McCandlish, Kaplan, Amodei et al. (2018, "An Empirical Model of Large-Batch Training",
section 2.2 and appendix D) find that to reach a given loss, training at batch size B takes

    S(B) = S_min (1 + B_noise / B)   steps   and   E(B) = E_min (1 + B / B_noise)   examples,

with S_min the fewest steps (at a huge batch) and E_min the fewest examples (at a tiny one);
B_noise is the gradient noise scale (``lrkit.noise``; B_simple estimates it). With the step
time t(B) measured on the user's device (``batchsize.throughput``), the wall time to that
loss is

    T(B) = S(B) t(B) = S_min t(B) (1 + B_noise / B),

so the batch size that reaches a target soonest, and the one that gets furthest in a given
wall time, are the same: the B that minimises t(B) (1 + B_noise / B), the time one
S_min-step costs. With the examples fixed instead (E epochs of N examples, S = N E / B
steps), the progress made is S / (1 + B_noise / B) = N E / (B + B_noise) S_min-steps, which
only falls as B grows: the smallest batch makes the most of the examples, and a larger one
loses only B / (B + B_noise) of them, little below B_noise.

On a CPU t(B) grows slower than B for small B (the per-step overhead dominates) so the time
choice lies above the smallest batch; past B_noise every doubling of B halves no time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MODES = ("target", "time", "epochs")
"""target: reach a validation metric soonest; time: the best metric in a wall time;
epochs: the best metric from a number of epochs (examples fixed)."""


def steps_factor(batch_size: float, noise_scale: float) -> float:
    """S(B) / S_min = 1 + B_noise / B."""
    return 1.0 + noise_scale / batch_size


def examples_factor(batch_size: float, noise_scale: float) -> float:
    """E(B) / E_min = 1 + B / B_noise."""
    return 1.0 + batch_size / noise_scale


def seconds_per_min_step(step_seconds: float, batch_size: float, noise_scale: float) -> float:
    """t(B) (1 + B_noise / B): the wall time that one S_min-step of progress costs."""
    return step_seconds * steps_factor(batch_size, noise_scale)


def epochs_progress(batch_size: float, noise_scale: float, examples: float) -> float:
    """S_min-steps made by ``examples`` examples at batch size B: examples / (B + B_noise)."""
    return examples / (batch_size + noise_scale)


@dataclass(frozen=True)
class BatchPrediction:
    """One candidate batch size: what was measured and what the model predicts."""

    batch_size: int
    step_seconds: float
    """Measured wall time of one training step (nan where it did not fit)."""
    fits: bool
    steps_factor: float
    """S(B) / S_min."""
    examples_factor: float
    """E(B) / E_min."""
    relative_time: float
    """T(B) / T(B*) for the time modes: the wall time to a given loss against the best
    candidate's (inf where it does not fit)."""
    relative_progress: float
    """Progress from the budget's examples against the smallest candidate's (epochs mode):
    (B_min + B_noise) / (B + B_noise)."""

    @property
    def examples_per_second(self) -> float:
        return self.batch_size / self.step_seconds if self.step_seconds > 0 else math.nan

    def to_json(self) -> dict[str, Any]:
        def finite(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "batch_size": self.batch_size,
            "step_seconds": finite(self.step_seconds),
            "examples_per_second": finite(self.examples_per_second),
            "fits": self.fits,
            "steps_factor": self.steps_factor,
            "examples_factor": self.examples_factor,
            "relative_time": finite(self.relative_time),
            "relative_progress": self.relative_progress,
        }


def predict(
    step_seconds: Mapping[int, float], noise_scale: float, fits: Mapping[int, bool] | None = None
) -> tuple[BatchPrediction, ...]:
    """Every candidate batch size (the keys of ``step_seconds``, in increasing order) with the
    model's predictions at noise scale ``noise_scale`` (> 0)."""
    if not (noise_scale > 0 and math.isfinite(noise_scale)):
        raise ValueError(f"noise_scale must be positive and finite, got {noise_scale}")
    sizes = sorted(step_seconds)
    if not sizes:
        raise ValueError("no candidate batch size")
    fitting = {b: (fits or {}).get(b, True) and math.isfinite(step_seconds[b]) for b in sizes}
    cost = {
        b: seconds_per_min_step(step_seconds[b], b, noise_scale) if fitting[b] else math.inf
        for b in sizes
    }
    best = min(cost.values())
    smallest = min((b for b in sizes if fitting[b]), default=sizes[0])
    return tuple(
        BatchPrediction(
            batch_size=b,
            step_seconds=step_seconds[b] if fitting[b] else math.nan,
            fits=fitting[b],
            steps_factor=steps_factor(b, noise_scale),
            examples_factor=examples_factor(b, noise_scale),
            relative_time=cost[b] / best if math.isfinite(best) else math.inf,
            relative_progress=(smallest + noise_scale) / (b + noise_scale),
        )
        for b in sizes
    )


def choose(predictions: tuple[BatchPrediction, ...], mode: str) -> int:
    """The model's batch size: the least time per S_min-step (target and time), or the
    smallest that fits (epochs: the most progress from the examples)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    fitting = [p for p in predictions if p.fits]
    if not fitting:
        raise ValueError("no candidate batch size fits")
    if mode == "epochs":
        return min(p.batch_size for p in fitting)
    return min(fitting, key=lambda p: (p.relative_time, p.batch_size)).batch_size


def neighbours(chosen: int, predictions: tuple[BatchPrediction, ...], count: int = 3) -> list[int]:
    """The batch sizes raced around the model's choice: B/2, B and 2B where they fit, else
    the nearest fitting candidates, ``count`` in all (fewer where fewer fit)."""
    fitting = sorted(p.batch_size for p in predictions if p.fits)
    index = fitting.index(chosen)
    low = max(0, min(index - count // 2, len(fitting) - count))
    return fitting[low : low + count]
