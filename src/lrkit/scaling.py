"""Scaling the learning rate with the batch size (pure core).

- linear: lr(B') = lr(B) * B' / B  (Krizhevsky 2014; Goyal et al. 2017)
- sqrt:   lr(B') = lr(B) * sqrt(B' / B)  (Krizhevsky 2014; Hoffer et al. 2017)
- fit:    lr(B') = lr(B) * (B' / B) ** k, with k fitted to a sweep's best learning rates
  (``fit_power_law``).

The fit: least squares on log lr*(B) = log c + k log B over the batch sizes of a sweep, with
the standard error of the slope, sqrt(SSE / (n - 2) / Sxx), where there are at least three.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lrkit import validation as check
from lrkit.errors import LrkitValueError

RULES = ("linear", "sqrt", "fit")
FORMULAS = {
    "linear": "lr(B') = lr(B) * B' / B",
    "sqrt": "lr(B') = lr(B) * sqrt(B' / B)",
    "fit": "lr(B') = lr(B) * (B' / B) ** k",
}


@dataclass(frozen=True)
class PowerLawFit:
    """lr*(B) ~ c * B ** k, fitted to (batch size, best lr) pairs."""

    k: float
    k_stderr: float | None
    """None with two batch sizes (an exact line has no residual to estimate it from)."""
    c: float
    batch_sizes: tuple[int, ...]
    lrs: tuple[float, ...]

    def predict(self, batch_size: float) -> float:
        return float(self.c * batch_size**self.k)

    def closer_rule(self) -> str:
        """linear (k = 1) or sqrt (k = 0.5), whichever k is nearer."""
        return "linear" if abs(self.k - 1.0) <= abs(self.k - 0.5) else "sqrt"

    def consistent_with(self, k: float) -> bool | None:
        """Whether exponent ``k`` lies within two standard errors of the fit (None: no error)."""
        if self.k_stderr is None:
            return None
        return abs(self.k - k) <= 2.0 * self.k_stderr

    def describe(self) -> str:
        """One sentence: k, its uncertainty, and where the linear and square-root rules stand."""
        sizes = ", ".join(map(str, self.batch_sizes))
        if self.k_stderr is None:
            return (
                f"lr* ~ B^k with k = {self.k:.2f} over batch sizes {sizes} (two batch sizes: no "
                f"error estimate); nearer rule: {self.closer_rule()}"
            )
        verdicts = [
            f"the {name} rule (k = {k:g}) is "
            f"{'within' if self.consistent_with(k) else 'outside'} it"
            for name, k in (("linear", 1.0), ("square-root", 0.5))
        ]
        low, high = self.k - 2 * self.k_stderr, self.k + 2 * self.k_stderr
        return (
            f"lr* ~ B^k with k = {self.k:.2f} ± {self.k_stderr:.2f} over batch sizes {sizes}; "
            f"2-sigma range {low:.2f} .. {high:.2f}: {verdicts[0]}, {verdicts[1]}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "k": self.k,
            "k_stderr": self.k_stderr,
            "c": self.c,
            "closer_rule": self.closer_rule(),
            "linear_consistent": self.consistent_with(1.0),
            "sqrt_consistent": self.consistent_with(0.5),
        }


def fit_power_law(best: Mapping[int, float]) -> PowerLawFit:
    """Fit lr* = c B^k to best learning rates by batch size (at least two batch sizes)."""
    if len(best) < 2:
        raise LrkitValueError(
            "fitting lr* ~ B^k needs best learning rates at two batch sizes or more"
        )
    sizes = tuple(sorted(best))
    lrs = tuple(best[b] for b in sizes)
    x = [math.log(b) for b in sizes]
    y = [math.log(lr) for lr in lrs]
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((xi - mx) ** 2 for xi in x)
    k = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y, strict=True)) / sxx
    intercept = my - k * mx
    stderr = None
    if n > 2:
        sse = sum((yi - intercept - k * xi) ** 2 for xi, yi in zip(x, y, strict=True))
        stderr = math.sqrt(sse / (n - 2) / sxx)
    return PowerLawFit(k, stderr, math.exp(intercept), sizes, lrs)


def scale_lr(lr: float, batch_size: int, to: int, rule: str, k: float | None = None) -> float:
    """The learning rate for batch size ``to`` from one known good at ``batch_size``."""
    lr = check.positive_float("lr", lr)
    batch_size = check.positive_int("batch_size", batch_size)
    to = check.positive_int("to", to)
    rule = check.choice("rule", rule, RULES)
    ratio = to / batch_size
    if rule == "linear":
        return lr * ratio
    if rule == "sqrt":
        return lr * math.sqrt(ratio)
    if k is None:
        raise LrkitValueError("rule 'fit' needs an exponent k (from a sweep: --store)")
    return float(lr * ratio**k)


def best_pairs(pairs: Sequence[tuple[int, float]]) -> dict[int, float]:
    """{batch size: lr} from (batch size, lr) pairs, refusing a batch size given twice."""
    result: dict[int, float] = {}
    for batch_size, lr in pairs:
        if batch_size in result:
            raise LrkitValueError(f"batch size {batch_size} appears twice")
        result[batch_size] = lr
    return result
