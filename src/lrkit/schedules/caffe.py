"""Caffe's learning-rate policies, with Caffe's semantics.

Source: Caffe, ``SGDSolver<Dtype>::GetLearningRate`` (``src/caffe/solvers/sgd_solver.cpp``) and
the policy list in ``src/caffe/proto/caffe.proto``. Caffe's ``iter / stepsize`` is integer
division, so ``step`` floors. Parameter names follow Caffe's (``stepsize`` is spelled
``step_size``, ``stepvalue`` is ``milestones``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from lrkit import validation as check
from lrkit.schedules.base import Schedule, pow_or_inf


def fixed(base_lr: float) -> Schedule:
    """Caffe ``fixed``: the same learning rate at every iteration.

    lr(t) = base_lr

    Args:
        base_lr: the learning rate.
    """
    base_lr = check.positive_float("base_lr", base_lr)

    def schedule(t: int) -> float:
        return base_lr

    return schedule


def step(base_lr: float, gamma: float, step_size: int) -> Schedule:
    """Caffe ``step``: multiply by ``gamma`` every ``step_size`` iterations.

    lr(t) = base_lr * gamma ** floor(t / step_size)

    Equals PyTorch's ``StepLR(step_size, gamma)``.

    Args:
        base_lr: the learning rate at iteration 0.
        gamma: the factor applied at each step (0 < gamma < 1 decays).
        step_size: iterations between two steps (Caffe's stepsize).
    """
    base_lr = check.positive_float("base_lr", base_lr)
    gamma = check.positive_float("gamma", gamma)
    step_size = check.positive_int("step_size", step_size)

    def schedule(t: int) -> float:
        return base_lr * pow_or_inf(gamma, t // step_size)

    return schedule


def multistep(base_lr: float, gamma: float, milestones: Sequence[int]) -> Schedule:
    """Caffe ``multistep``: multiply by ``gamma`` at each milestone passed.

    lr(t) = base_lr * gamma ** (number of milestones m with m <= t)

    Equals PyTorch's ``MultiStepLR(milestones, gamma)``.

    Args:
        base_lr: the learning rate at iteration 0.
        gamma: the factor applied at each milestone.
        milestones: strictly increasing iterations at which gamma is applied (Caffe's
            stepvalue).
    """
    base_lr = check.positive_float("base_lr", base_lr)
    gamma = check.positive_float("gamma", gamma)
    steps = check.increasing_positive_ints("milestones", milestones)

    def schedule(t: int) -> float:
        return base_lr * pow_or_inf(gamma, bisect.bisect_right(steps, t))

    return schedule


def exp(base_lr: float, gamma: float) -> Schedule:
    """Caffe ``exp``: multiply by ``gamma`` every iteration.

    lr(t) = base_lr * gamma ** t

    Equals PyTorch's ``ExponentialLR(gamma)``.

    Args:
        base_lr: the learning rate at iteration 0.
        gamma: the factor per iteration.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    gamma = check.positive_float("gamma", gamma)

    def schedule(t: int) -> float:
        return base_lr * pow_or_inf(gamma, t)

    return schedule


def inv(base_lr: float, gamma: float, power: float) -> Schedule:
    """Caffe ``inv``: inverse decay.

    lr(t) = base_lr * (1 + gamma * t) ** (-power)

    Args:
        base_lr: the learning rate at iteration 0.
        gamma: how fast the denominator grows per iteration.
        power: the exponent of the decay.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    gamma = check.positive_float("gamma", gamma)
    exponent = check.nonnegative_float("power", power)

    def schedule(t: int) -> float:
        return base_lr * float((1.0 + gamma * t) ** (-exponent))

    return schedule


def poly(base_lr: float, power: float, max_iter: int) -> Schedule:
    """Caffe ``poly``: polynomial decay to zero at ``max_iter``.

    lr(t) = base_lr * (1 - min(t, max_iter) / max_iter) ** power

    Caffe stops training at ``max_iter``; past it the rate stays 0 (as PyTorch's
    ``PolynomialLR(total_iters=max_iter, power=power)``, which this equals).

    Args:
        base_lr: the learning rate at iteration 0.
        power: the polynomial's exponent (1 is linear decay).
        max_iter: the iteration at which the rate reaches 0.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    exponent = check.nonnegative_float("power", power)
    max_iter = check.positive_int("max_iter", max_iter)

    def schedule(t: int) -> float:
        return base_lr * float((1.0 - min(t, max_iter) / max_iter) ** exponent)

    return schedule


def sigmoid(base_lr: float, gamma: float, step_size: int) -> Schedule:
    """Caffe ``sigmoid``: a logistic curve centred on ``step_size``.

    lr(t) = base_lr / (1 + exp(-gamma * (t - step_size)))

    A negative ``gamma`` decays (Caffe's usual use); a positive one rises.

    Args:
        base_lr: the learning rate the curve tends to.
        gamma: the slope; its sign sets the direction.
        step_size: the iteration at which lr = base_lr / 2.
    """
    base_lr = check.positive_float("base_lr", base_lr)
    gamma = check.nonzero_float("gamma", gamma)
    step_size = check.nonnegative_int("step_size", step_size)

    def schedule(t: int) -> float:
        z = -gamma * (t - step_size)
        # Two algebraically equal forms, each free of overflow on its side of 0.
        if z >= 0:
            e = math.exp(-z)
            return base_lr * e / (1.0 + e)
        return base_lr / (1.0 + math.exp(z))

    return schedule
