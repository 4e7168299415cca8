"""Warm-up-stable-decay (WSD): a constant rate, then a short cooldown at the end.

Hu et al. (2024, MiniCPM) train at a constant rate and decay only over the last part of the
run; Hägele et al. (2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations") find a cooldown over the last ~20% matches a cosine schedule, with a (1 - sqrt)
shape best. The warm-up in front is the shared one (``compose.warmup``, ``--warmup-iters``
on the command line), which starts this schedule's clock where it ends.

Because the constant part does not depend on the run's length, runs of several lengths share
it: a run of ``max_iter`` iterations is the constant run up to ``cooldown_start(max_iter,
cooldown_fraction)``, then its own cooldown, so a ladder of horizons can branch each cooldown
off one constant-rate run instead of training every horizon from the start.
"""

from __future__ import annotations

import math
from typing import Literal, cast

from lrkit import validation as check
from lrkit.schedules.base import Schedule

CooldownShape = Literal["linear", "cosine", "1-sqrt"]
COOLDOWNS: tuple[CooldownShape, ...] = ("linear", "cosine", "1-sqrt")


def cooldown_iters(max_iter: int, cooldown_fraction: float) -> int:
    """D = round(cooldown_fraction * max_iter), at least 1: the cooldown's length."""
    return max(1, round(cooldown_fraction * max_iter))


def cooldown_start(max_iter: int, cooldown_fraction: float) -> int:
    """max_iter - D: the iteration at which a run of ``max_iter`` leaves the constant rate."""
    return max_iter - cooldown_iters(max_iter, cooldown_fraction)


def cooldown_factor(shape: CooldownShape, fraction: float) -> float:
    """g(f) for f in [0, 1]: 1 - f (linear), (1 + cos(pi f)) / 2 (cosine), 1 - sqrt(f)
    (1-sqrt); each falls from 1 at f = 0 to 0 at f = 1."""
    if shape == "linear":
        return 1.0 - fraction
    if shape == "cosine":
        return (1.0 + math.cos(math.pi * fraction)) / 2.0
    return 1.0 - math.sqrt(fraction)


def wsd(
    base_lr: float,
    max_iter: int,
    cooldown_fraction: float = 0.2,
    cooldown: CooldownShape = "linear",
    min_lr: float = 0.0,
) -> Schedule:
    """Stable then decay: ``base_lr`` until the last share of the run, then a cooldown to
    ``min_lr`` (Hu et al. 2024; Hägele et al. 2024).

    lr(t) = base_lr                                     t < s
    lr(t) = min_lr + (base_lr - min_lr) * g((t - s) / D)  s <= t < max_iter
    lr(t) = min_lr                                      t >= max_iter

    with D = max(1, round(cooldown_fraction * max_iter)), s = max_iter - D and g(f) = 1 - f
    (linear), (1 + cos(pi f)) / 2 (cosine) or 1 - sqrt(f) (1-sqrt). With cooldown_fraction
    1 and a linear cooldown it equals PyTorch's ``LinearLR(1, min_lr / base_lr, max_iter)``;
    a warm-up goes in front with ``warmup``.

    Args:
        base_lr: the constant learning rate before the cooldown.
        max_iter: the run's length: the cooldown ends here.
        cooldown_fraction: the cooldown's share of max_iter, in (0, 1] (0.2 is Hägele et al.'s
            choice).
        cooldown: the cooldown's shape: linear, cosine or 1-sqrt.
        min_lr: the rate at the end, ``0 <= min_lr <= base_lr``.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    max_iter = check.positive_int("max_iter", max_iter)
    cooldown_fraction = check.float_in(
        "cooldown_fraction", cooldown_fraction, 0.0, 1.0, low_open=True, high_open=False
    )
    shape = cast(CooldownShape, check.choice("cooldown", cooldown, COOLDOWNS))
    min_lr = check.float_in("min_lr", min_lr, 0.0, base_lr, low_open=False, high_open=False)
    length = cooldown_iters(max_iter, cooldown_fraction)
    start = max_iter - length

    def schedule(t: int) -> float:
        if t < start:
            return base_lr
        if t >= max_iter:
            return min_lr
        # base - (base - min)(1 - g) = min + (base - min) g, exact at g = 1 (t = s)
        return base_lr - (base_lr - min_lr) * (1.0 - cooldown_factor(shape, (t - start) / length))

    return schedule
