"""Modern decays: constant, linear, cosine annealing and cosine with warm restarts."""

from __future__ import annotations

import math

from lrkit import validation as check
from lrkit.schedules.base import Schedule


def constant(base_lr: float, factor: float = 1.0, total_iters: int = 0) -> Schedule:
    """A constant rate, optionally scaled by ``factor`` for the first ``total_iters`` iterations.

    lr(t) = base_lr * factor   if t < total_iters
    lr(t) = base_lr            otherwise

    With the defaults it is a plain constant. Equals PyTorch's
    ``ConstantLR(factor, total_iters)``.

    Args:
        base_lr: the learning rate after the first ``total_iters`` iterations.
        factor: the multiplier applied before ``total_iters``.
        total_iters: how many iterations use the factor.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    factor = check.nonnegative_float("factor", factor)
    total_iters = check.nonnegative_int("total_iters", total_iters)

    def schedule(t: int) -> float:
        return base_lr * factor if t < total_iters else base_lr

    return schedule


def linear(
    base_lr: float, max_iter: int, start_factor: float = 1.0, end_factor: float = 0.0
) -> Schedule:
    """Linear interpolation of the factor from ``start_factor`` to ``end_factor``.

    lr(t) = base_lr * (start_factor + (end_factor - start_factor) * min(t, max_iter) / max_iter)

    The defaults decay linearly to 0 at ``max_iter``. Equals PyTorch's
    ``LinearLR(start_factor, end_factor, total_iters=max_iter)``.

    Args:
        base_lr: the learning rate the factors multiply.
        max_iter: the iteration at which the factor reaches ``end_factor`` (held after).
        start_factor: the factor at iteration 0.
        end_factor: the factor at ``max_iter`` and after.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    max_iter = check.positive_int("max_iter", max_iter)
    start_factor = check.nonnegative_float("start_factor", start_factor)
    end_factor = check.nonnegative_float("end_factor", end_factor)

    def schedule(t: int) -> float:
        fraction = min(t, max_iter) / max_iter
        return base_lr * (start_factor + (end_factor - start_factor) * fraction)

    return schedule


def _cosine_between(high: float, low: float, fraction: float) -> float:
    return low + (high - low) * (1.0 + math.cos(math.pi * fraction)) / 2.0


def cosine(base_lr: float, max_iter: int, min_lr: float = 0.0) -> Schedule:
    """Cosine annealing from ``base_lr`` to a floor ``min_lr`` (Loshchilov & Hutter 2017).

    lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * min(t, max_iter) / max_iter)) / 2

    The rate stays at ``min_lr`` after ``max_iter``. Up to ``max_iter`` it equals PyTorch's
    ``CosineAnnealingLR(T_max=max_iter, eta_min=min_lr)`` (which rises again after T_max).

    Args:
        base_lr: the learning rate at iteration 0.
        max_iter: the iteration at which the rate reaches ``min_lr``.
        min_lr: the floor, ``0 <= min_lr <= base_lr``.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    max_iter = check.positive_int("max_iter", max_iter)
    min_lr = check.float_in("min_lr", min_lr, 0.0, base_lr, low_open=False, high_open=False)

    def schedule(t: int) -> float:
        return _cosine_between(base_lr, min_lr, min(t, max_iter) / max_iter)

    return schedule


def cosine_restarts(
    base_lr: float, cycle_iters: int, t_mult: int = 1, min_lr: float = 0.0
) -> Schedule:
    """Cosine annealing with warm restarts, SGDR (Loshchilov & Hutter 2017).

    lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * t_cur / t_i)) / 2

    where cycle i lasts t_i = cycle_iters * t_mult ** i iterations and t_cur counts the
    iterations since the last restart. Equals PyTorch's
    ``CosineAnnealingWarmRestarts(T_0=cycle_iters, T_mult=t_mult, eta_min=min_lr)``.

    Args:
        base_lr: the learning rate at each restart.
        cycle_iters: the length of the first cycle.
        t_mult: the growth factor of each cycle's length (an integer >= 1).
        min_lr: the floor each cycle anneals towards, ``0 <= min_lr <= base_lr``.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    cycle_iters = check.positive_int("cycle_iters", cycle_iters)
    t_mult = check.positive_int("t_mult", t_mult)
    min_lr = check.float_in("min_lr", min_lr, 0.0, base_lr, low_open=False, high_open=False)

    def schedule(t: int) -> float:
        if t_mult == 1:
            t_cur, t_i = t % cycle_iters, cycle_iters
        else:
            # Integer arithmetic: the cycle boundaries are exact at any t.
            t_cur, t_i = t, cycle_iters
            while t_cur >= t_i:
                t_cur -= t_i
                t_i *= t_mult
        return _cosine_between(base_lr, min_lr, t_cur / t_i)

    return schedule
