"""Cyclical learning rates (Smith 2015/2017) and the one-cycle policy (Smith & Topin 2018)."""

from __future__ import annotations

import math
from typing import Literal

from lrkit import validation as check
from lrkit.errors import InvalidParameterError
from lrkit.schedules.base import Schedule, pow_or_inf

CyclicMode = Literal["triangular", "triangular2", "exp_range"]
Anneal = Literal["cos", "linear"]


def cyclic(
    base_lr: float,
    max_lr: float,
    step_size: int,
    step_size_down: int | None = None,
    mode: CyclicMode = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    """Cyclical learning rate, L. N. Smith, "Cyclical Learning Rates for Training Neural
    Networks" (2015, WACV 2017).

    lr(t) = base_lr + (max_lr - base_lr) * h(t) * scale(t)

    where h rises linearly from 0 to 1 over ``step_size`` iterations and falls back to 0 over
    ``step_size_down`` (default: ``step_size``), and with cycle = 1 + floor(t / (up + down)):
    scale = 1 (triangular), 1 / 2 ** (cycle - 1) (triangular2), gamma ** t (exp_range).
    Equals PyTorch's ``CyclicLR`` with the same arguments.

    Args:
        base_lr: the bottom of each cycle.
        max_lr: the top of the first cycle (> base_lr).
        step_size: iterations of the rising half-cycle.
        step_size_down: iterations of the falling half-cycle (default: ``step_size``).
        mode: triangular, triangular2 or exp_range.
        gamma: the per-iteration factor of exp_range (ignored by the other modes).
    """
    base_lr = check.positive_float("base_lr", base_lr)
    max_lr = check.positive_float("max_lr", max_lr)
    if max_lr <= base_lr:
        raise InvalidParameterError("max_lr", f"> base_lr ({base_lr:g})", max_lr)
    up = check.positive_int("step_size", step_size)
    down = up if step_size_down is None else check.positive_int("step_size_down", step_size_down)
    mode = check.choice("mode", mode, ("triangular", "triangular2", "exp_range"))  # type: ignore[assignment]
    gamma = check.float_in("gamma", gamma, 0.0, 1.0, low_open=True, high_open=False)
    period = up + down
    height = max_lr - base_lr

    def schedule(t: int) -> float:
        position = t % period
        rise = position / up if position <= up else (period - position) / down
        if mode == "triangular":
            scale = 1.0
        elif mode == "triangular2":
            scale = 0.5 ** (t // period)
        else:
            scale = pow_or_inf(gamma, t)
        return base_lr + height * rise * scale

    return schedule


def _anneal(start: float, end: float, fraction: float, how: Anneal) -> float:
    if how == "cos":
        return end + (start - end) * (1.0 + math.cos(math.pi * fraction)) / 2.0
    return start + (end - start) * fraction


def one_cycle(
    max_lr: float,
    max_iter: int,
    pct_start: float = 0.3,
    anneal: Anneal = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    """The one-cycle policy: L. N. Smith & N. Topin, "Super-Convergence" (2018).

    lr(t) = anneal(max_lr / div_factor -> max_lr) over [0, p],
            then anneal(max_lr -> max_lr / (div_factor * final_div_factor)) up to max_iter - 1

    with p = pct_start * max_iter - 1 and anneal cosine or linear. With ``three_phase`` the
    rate falls back to max_lr / div_factor at 2p, then anneals to the minimum by max_iter - 1
    (Smith's original shape). The rate is held at the minimum after max_iter - 1. Equals
    PyTorch's ``OneCycleLR(max_lr, total_steps=max_iter, ...)``.

    Args:
        max_lr: the peak learning rate.
        max_iter: the length of the cycle in iterations.
        pct_start: the fraction of the cycle spent rising.
        anneal: cos or linear.
        div_factor: initial lr = max_lr / div_factor.
        final_div_factor: final lr = initial lr / final_div_factor.
        three_phase: use the three-phase shape.
    """
    max_lr = check.positive_float("max_lr", max_lr)
    max_iter = check.positive_int("max_iter", max_iter)
    pct_limit = 0.5 if three_phase else 1.0
    pct_start = check.float_in(
        "pct_start", pct_start, 0.0, pct_limit, low_open=True, high_open=True
    )
    if pct_start * max_iter <= 1.0:
        raise InvalidParameterError(
            "pct_start",
            f"> 1 / max_iter ({1.0 / max_iter:g}) so the rise lasts an iteration",
            pct_start,
        )
    how: Anneal = check.choice("anneal", anneal, ("cos", "linear"))  # type: ignore[assignment]
    div_factor = check.positive_float("div_factor", div_factor)
    final_div_factor = check.positive_float("final_div_factor", final_div_factor)
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    last = float(max_iter - 1)
    peak = pct_start * max_iter - 1.0
    # Phases as (end iteration, start lr, end lr); each starts where the previous one ends.
    phases: list[tuple[float, float, float]] = [(peak, initial_lr, max_lr)]
    if three_phase:
        phases += [
            (2.0 * pct_start * max_iter - 2.0, max_lr, initial_lr),
            (last, initial_lr, min_lr),
        ]
    else:
        phases.append((last, max_lr, min_lr))

    def schedule(t: int) -> float:
        position = min(float(t), last)
        begin = 0.0
        for i, (end, start_lr, end_lr) in enumerate(phases):
            if position <= end or i == len(phases) - 1:
                return _anneal(start_lr, end_lr, (position - begin) / (end - begin), how)
            begin = end
        raise AssertionError("unreachable: the last phase always matches")

    return schedule
