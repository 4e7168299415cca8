"""The coordinate check: does a parametrization keep the activations' size fixed as the width
grows (Yang et al. 2022, "Tensor Programs V", section 5 and appendix D.1)?

At each width, the model trains for a few steps at one learning rate; after every step, the
mean absolute value of each layer's output over a fixed batch (``A_l(w, t)``) is recorded.
Under a parametrization whose best learning rate transfers across widths (muP) the curves
of A_l against width are flat; under the standard one, with Adam at a fixed lr, they grow
(the output layer's update adds up across width coordinates). The verdict is the slope

    ln A_l(w, t_last) = c + s_l ln w      (least squares over widths and seeds)

with its Student-t interval: ``flat`` where the interval holds 0 or lies within
``FLAT_SLOPE`` of it, ``grows`` or ``shrinks`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lrkit import validation as check
from lrkit.data.features import Inputs
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.training.evaluate import LossFn
from lrkit.training.outputs import call_model
from lrkit.training.step import MakeOptimizer, train_step

FLAT_SLOPE = 0.1
"""|slope| below this (A_l changing by less than 7% per doubling of the width) is flat."""
T_90 = (
    6.314,
    2.920,
    2.353,
    2.132,
    2.015,
    1.943,
    1.895,
    1.860,
    1.833,
    1.812,
    1.796,
    1.782,
    1.771,
    1.761,
    1.753,
    1.746,
    1.740,
    1.734,
    1.729,
    1.725,
    1.721,
    1.717,
    1.714,
    1.711,
    1.708,
    1.706,
    1.703,
    1.701,
    1.699,
    1.697,
)
"""Student's t for a two-sided 90% interval at 1 .. 30 degrees of freedom."""


MakeModel = Callable[[int], nn.Module]


@dataclass(frozen=True)
class LayerSlope:
    """One layer's activation size against width."""

    layer: str
    sizes: tuple[tuple[int, float], ...]
    """(width, mean |activation| at the last step, averaged over seeds)."""
    slope: float
    interval: tuple[float, float]

    @property
    def verdict(self) -> str:
        low, high = self.interval
        if low <= 0.0 <= high or max(abs(low), abs(high)) < FLAT_SLOPE:
            return "flat"
        return "grows" if low > 0 else "shrinks"

    def to_json(self) -> dict[str, object]:
        return {
            "layer": self.layer,
            "sizes": [list(s) for s in self.sizes],
            "slope": self.slope,
            "interval": list(self.interval),
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class CoordinateCheck:
    """Every layer's slope, and the activation sizes after each step."""

    widths: tuple[int, ...]
    steps: int
    layers: tuple[LayerSlope, ...]
    curves: dict[str, dict[int, tuple[float, ...]]]
    """Layer -> width -> mean |activation| after each step (the first seed)."""

    @property
    def flat(self) -> bool:
        """Every layer's activations keep their size across widths."""
        return all(layer.verdict == "flat" for layer in self.layers)

    def to_json(self) -> dict[str, object]:
        return {
            "widths": list(self.widths),
            "steps": self.steps,
            "flat": self.flat,
            "layers": [layer.to_json() for layer in self.layers],
        }


def t_90(df: int) -> float:
    """Student's t quantile 0.95 at ``df`` degrees of freedom (past 30: 1.645 + 1.5 / df,
    within 0.002)."""
    return T_90[df - 1] if df <= len(T_90) else 1.645 + 1.5 / df


def slope_interval(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """Least-squares slope of ``ys`` on ``xs`` with its 90% Student-t interval."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    sxx = float(np.sum((x - x.mean()) ** 2))
    slope = float(np.sum((x - x.mean()) * (y - y.mean())) / sxx)
    df = len(x) - 2
    residual = y - (y.mean() + slope * (x - x.mean()))
    se = math.sqrt(float(np.sum(residual**2)) / df / sxx) if df > 0 else math.inf
    half = t_90(df) * se if df > 0 else math.inf
    return slope, (slope - half, slope + half)


def activation_sizes(model: nn.Module, x: Inputs, layers: Sequence[str]) -> dict[str, float]:
    """Mean |output| of each named submodule on ``x`` (evaluation, no gradient)."""
    found: dict[str, float] = {}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: found.__setitem__(name, float(out.abs().mean()))
        )
        for name in layers
    ]
    try:
        with torch.no_grad():
            call_model(model, x)
    finally:
        for handle in handles:
            handle.remove()
    return found


def coordinate_check(
    make_model: MakeModel,
    make_optimizer: MakeOptimizer,
    widths: Sequence[int],
    data: TensorData,
    loss_fn: LossFn,
    *,
    steps: int = 5,
    batch_size: int = 64,
    seeds: Sequence[int] = (0, 1, 2),
) -> CoordinateCheck:
    """Train ``make_model(width)`` with ``make_optimizer(model)`` for ``steps`` steps
    (``training.step.train_step``) at each width and seed, on batches of ``data``; record each
    layer's activation size over the first ``batch_size`` examples after every step (layers:
    the submodules with parameters and no children, as named by ``named_modules``)."""
    widths = tuple(sorted(check.positive_int("widths", w) for w in widths))
    if len(set(widths)) < 3:
        raise LrkitValueError(f"a coordinate check needs at least 3 widths; got {list(widths)}")
    steps = check.positive_int("steps", steps)
    x, y = data.x, data.y
    batch_size = check.int_in("batch_size", batch_size, 1, len(x), "the examples")
    if not seeds:
        raise LrkitValueError("give at least one seed")
    probe = x[:batch_size]
    points: dict[str, list[tuple[float, float]]] = {}
    sizes: dict[str, dict[int, list[float]]] = {}
    curves: dict[str, dict[int, tuple[float, ...]]] = {}
    names: list[str] | None = None
    for width in widths:
        for seed in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = make_model(width)
                optimizer = make_optimizer(model)
                order = torch.randperm(len(x))
            here = [
                n
                for n, m in model.named_modules()
                if not list(m.children()) and any(True for _ in m.parameters(recurse=False))
            ]
            if names is None:
                names = here
            elif here != names:
                raise LrkitValueError(
                    f"the model's layers differ between widths ({names} vs {here}): the check "
                    "compares each layer across widths"
                )
            history: dict[str, list[float]] = {n: [] for n in names}
            for step in range(steps):
                index = order[(step * batch_size) % len(x) :][:batch_size]
                model.train()
                train_step(model, optimizer, loss_fn, x[index], y[index])
                model.eval()
                for name, size in activation_sizes(model, probe, names).items():
                    history[name].append(size)
            for name in names:
                last = history[name][-1]
                points.setdefault(name, []).append((math.log(width), math.log(last)))
                sizes.setdefault(name, {}).setdefault(width, []).append(last)
                if seed == seeds[0]:
                    curves.setdefault(name, {})[width] = tuple(history[name])
    assert names is not None
    layers = []
    for name in names:
        slope, interval = slope_interval([p[0] for p in points[name]], [p[1] for p in points[name]])
        mean = tuple((w, float(np.mean(sizes[name][w]))) for w in widths)
        layers.append(LayerSlope(name, mean, slope, interval))
    return CoordinateCheck(widths, steps, tuple(layers), curves)
