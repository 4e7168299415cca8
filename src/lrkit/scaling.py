"""Scaling the learning rate with the batch size (pure core).

- linear: lr(B') = lr(B) * B' / B  (Krizhevsky 2014; Goyal et al. 2017)
- sqrt:   lr(B') = lr(B) * sqrt(B' / B)  (Krizhevsky 2014; Hoffer et al. 2017)
- fit:    lr(B') = lr(B) * (B' / B) ** k, with k fitted to a sweep's best learning rates
  (``fit_power_law``).
- noise:  lr(B') = lr_max / (1 + B_noise / B'), lr_max = lr(B) (1 + B_noise / B)
  (McCandlish et al. 2018, eq. 2.6: the best step size against the batch size, with B_noise
  the gradient noise scale, ``lrkit noise``): linear in B' well below B_noise, flat well above.
- surge:  lr(B') = lr_peak / s(B'), s(B) = (sqrt(B_noise / B) + sqrt(B / B_noise)) / 2,
  lr_peak = lr(B) s(B) (Li et al. 2024, "Surge Phenomenon in Optimal Learning Rate and Batch
  Size Scaling": Adam-style, sign-like updates): the best lr rises as sqrt(B') well below
  B_noise, peaks at B' = B_noise, and falls as 1 / sqrt(B') above it.

What else moves with the batch size (``scale_beta2``, ``scale_weight_decay``):

- Adam's beta2: its moving average of squared gradients forgets half of itself in
  ln(1/2) / ln(beta2) steps, B ln(1/2) / ln(beta2) examples. Keeping that half-life in examples
  gives beta2' = beta2 ** (B' / B) (Marek et al. 2025, "Small Batch Size Training for Language
  Models").
- AdamW's weight decay: the weights are a moving average over tau = 1 / (lr wd) steps, B / (lr
  wd) examples (PyTorch's AdamW decays by lr wd a step). Keeping tau in examples (in epochs)
  gives wd' = wd (lr / lr') (B' / B) (Wang & Aitchison 2024, "How to set AdamW's weight decay
  as you scale model and dataset size"): unchanged under the linear lr rule.

The fit: least squares on log lr*(B) = log c + k log B over the batch sizes of a sweep, with
the standard error of the slope, sqrt(SSE / (n - 2) / Sxx), where there are at least three.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from lrkit import validation as check
from lrkit.errors import InvalidParameterError, LrkitValueError

RULES = ("linear", "sqrt", "fit", "noise", "surge")
FORMULAS = {
    "linear": "lr(B') = lr(B) * B' / B",
    "sqrt": "lr(B') = lr(B) * sqrt(B' / B)",
    "fit": "lr(B') = lr(B) * (B' / B) ** k",
    "noise": "lr(B') = lr_max / (1 + B_noise / B'), lr_max = lr(B) * (1 + B_noise / B)",
    "surge": "lr(B') = lr_peak / s(B'), s(B) = (sqrt(B_noise / B) + sqrt(B / B_noise)) / 2, "
    "lr_peak = lr(B) * s(B)",
}
NOISE_RULES = ("noise", "surge")
"""The rules that read the gradient noise scale B_noise."""
BETA2_FORMULA = "beta2' = beta2 ** (B' / B)"
WEIGHT_DECAY_FORMULA = "wd' = wd * (lr / lr') * (B' / B)"
REGIME_FACTOR = 4.0
"""B' <= B_noise / 4: linear regime (the lr still grows within 80% of linearly);
B' >= 4 B_noise: saturated (within 80% of lr_max); between them: transition."""


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


@dataclass(frozen=True)
class NoiseRule:
    """lr(B) = lr_max / (1 + B_noise / B) (McCandlish et al. 2018)."""

    lr_max: float
    noise_scale: float

    def predict(self, batch_size: float) -> float:
        return self.lr_max / (1.0 + self.noise_scale / batch_size)

    def regime(self, batch_size: float) -> str:
        """linear, transition or saturated (``REGIME_FACTOR``)."""
        if batch_size <= self.noise_scale / REGIME_FACTOR:
            return "linear"
        if batch_size >= self.noise_scale * REGIME_FACTOR:
            return "saturated"
        return "transition"

    def describe_regime(self, batch_size: float) -> str:
        regime = self.regime(batch_size)
        reading = {
            "linear": "well below B_noise: the best lr still grows about linearly with the batch",
            "transition": "near B_noise: the best lr grows more slowly than the batch",
            "saturated": "well above B_noise: larger batches barely raise the best lr (and "
            "save few steps)",
        }[regime]
        noise = f"B_noise = {self.noise_scale:.3g}"
        return f"batch {batch_size:g} is in the {regime} regime ({noise}): {reading}"

    def to_json(self) -> dict[str, object]:
        return {"lr_max": self.lr_max, "noise_scale": self.noise_scale}


def noise_rule(lr: float, batch_size: float, noise_scale: float) -> NoiseRule:
    """The rule through a good ``lr`` at ``batch_size``: lr_max = lr (1 + B_noise / B)."""
    lr = check.positive_float("lr", lr)
    batch_size = check.positive_float("batch_size", batch_size)
    noise_scale = check.positive_float("noise_scale", noise_scale)
    return NoiseRule(lr * (1.0 + noise_scale / batch_size), noise_scale)


def surge_factor(batch_size: float, noise_scale: float) -> float:
    """s(B) = (sqrt(B_noise / B) + sqrt(B / B_noise)) / 2: 1 at B = B_noise, larger elsewhere."""
    ratio = batch_size / noise_scale
    return 0.5 * (1.0 / math.sqrt(ratio) + math.sqrt(ratio))


@dataclass(frozen=True)
class SurgeRule:
    """lr(B) = lr_peak / s(B) (Li et al. 2024; ``surge_factor``): the best lr of an Adam-style
    optimizer, highest at B = B_noise."""

    lr_peak: float
    noise_scale: float

    def predict(self, batch_size: float) -> float:
        return self.lr_peak / surge_factor(batch_size, self.noise_scale)

    def to_json(self) -> dict[str, object]:
        return {"lr_peak": self.lr_peak, "noise_scale": self.noise_scale}


def surge_rule(lr: float, batch_size: float, noise_scale: float) -> SurgeRule:
    """The surge through a good ``lr`` at ``batch_size``: lr_peak = lr s(B)."""
    lr = check.positive_float("lr", lr)
    batch_size = check.positive_float("batch_size", batch_size)
    noise_scale = check.positive_float("noise_scale", noise_scale)
    return SurgeRule(lr * surge_factor(batch_size, noise_scale), noise_scale)


def fit_noise_rule(best: Mapping[int, float]) -> NoiseRule:
    """lr_max and B_noise fitted to best learning rates by batch size (two or more): least
    squares on logs (``_fit_peak``, with log(1 + B_noise / B_i))."""
    lr_max, noise = _fit_peak(best, lambda b, noise: math.log1p(noise / b), "the noise rule")
    return NoiseRule(lr_max, noise)


def fit_surge_rule(best: Mapping[int, float]) -> SurgeRule:
    """lr_peak and B_noise fitted to best learning rates by batch size (two or more): least
    squares on logs (``_fit_peak``, with log s(B_i))."""
    lr_peak, noise = _fit_peak(
        best, lambda b, noise: math.log(surge_factor(b, noise)), "the surge rule"
    )
    return SurgeRule(lr_peak, noise)


def _fit_peak(
    best: Mapping[int, float], log_factor: Callable[[float, float], float], what: str
) -> tuple[float, float]:
    """(the top lr, B_noise) of a rule lr(B) = top / factor(B, B_noise), fitted to best
    learning rates by batch size.

    Least squares on logs: for a given B_noise the best log top is the mean of
    log lr_i + log factor(B_i, B_noise); B_noise is then searched on a log grid from 1e-3 to
    1e3 times the batch sizes' range and refined by golden section."""
    if len(best) < 2:
        raise LrkitValueError(
            f"fitting {what} needs best learning rates at two batch sizes or more"
        )
    sizes = sorted(best)
    logs = [math.log(best[b]) for b in sizes]

    def fitted(log_noise: float) -> tuple[float, float]:
        noise = math.exp(log_noise)
        shifted = [y + log_factor(b, noise) for y, b in zip(logs, sizes, strict=True)]
        log_max = math.fsum(shifted) / len(shifted)
        return math.fsum((v - log_max) ** 2 for v in shifted), log_max

    low, high = math.log(sizes[0] * 1e-3), math.log(sizes[-1] * 1e3)
    grid = [low + (high - low) * i / 200 for i in range(201)]
    best_index = min(range(len(grid)), key=lambda i: fitted(grid[i])[0])
    a, b = grid[max(0, best_index - 1)], grid[min(len(grid) - 1, best_index + 1)]
    golden = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - golden * (b - a), a + golden * (b - a)
        if fitted(c)[0] <= fitted(d)[0]:
            b = d
        else:
            a = c
    log_noise = (a + b) / 2
    return math.exp(fitted(log_noise)[1]), math.exp(log_noise)


@dataclass(frozen=True)
class RuleComparison:
    """Each rule's prediction of the best lr at every batch size of a sweep, from the best lr
    at the reference batch size, and its error: the root mean square of log2(predicted /
    measured) over the other batch sizes (1.0 = off by a factor of 2 on average)."""

    reference: int
    measured: dict[int, float]
    predictions: dict[str, dict[int, float]]
    errors: dict[str, float]
    notes: dict[str, str]

    def to_json(self) -> dict[str, object]:
        return {
            "reference_batch_size": self.reference,
            "measured": {str(b): lr for b, lr in self.measured.items()},
            "predictions": {
                rule: {str(b): lr for b, lr in by_size.items()}
                for rule, by_size in self.predictions.items()
            },
            "rms_log2_error": dict(self.errors),
            "notes": dict(self.notes),
        }


def compare_rules(
    measured: Mapping[int, float],
    reference: int | None = None,
    noise_scale: float | None = None,
) -> RuleComparison:
    """The linear, square-root, fitted power, noise and surge rules against measured best lrs.

    Every rule starts from the measured lr at ``reference`` (default: the smallest batch
    size); the power law's k is fitted to all the measured pairs; the noise and surge rules
    use ``noise_scale`` (measured by ``lrkit noise``) or, without it, each its B_noise fitted to
    the pairs."""
    if len(measured) < 2:
        raise LrkitValueError(
            "comparing rules needs best learning rates at two batch sizes or more"
        )
    sizes = sorted(measured)
    reference = sizes[0] if reference is None else reference
    if reference not in measured:
        raise InvalidParameterError(
            "batch_size", f"one of the sweep's ({', '.join(map(str, sizes))})", reference
        )
    lr0 = measured[reference]
    fit = fit_power_law(measured)
    notes = {"fit": f"k = {fit.k:.3f} fitted to the sweep"}
    if noise_scale is None:
        rule = fit_noise_rule(measured)
        surge = fit_surge_rule(measured)
        anchored = noise_rule(lr0, reference, rule.noise_scale)
        surging = surge_rule(lr0, reference, surge.noise_scale)
        for name, fitted in (("noise", rule.noise_scale), ("surge", surge.noise_scale)):
            notes[name] = f"B_noise = {fitted:.3g} fitted to the sweep (no measurement given)"
    else:
        anchored = noise_rule(lr0, reference, noise_scale)
        surging = surge_rule(lr0, reference, noise_scale)
        notes["noise"] = notes["surge"] = f"B_noise = {noise_scale:.3g} measured"
    predictions = {
        "linear": {b: lr0 * b / reference for b in sizes},
        "sqrt": {b: lr0 * math.sqrt(b / reference) for b in sizes},
        "fit": {b: lr0 * (b / reference) ** fit.k for b in sizes},
        "noise": {b: anchored.predict(b) for b in sizes},
        "surge": {b: surging.predict(b) for b in sizes},
    }
    others = [b for b in sizes if b != reference]
    errors = {
        rule: math.sqrt(
            math.fsum(math.log2(by_size[b] / measured[b]) ** 2 for b in others) / len(others)
        )
        for rule, by_size in predictions.items()
    }
    return RuleComparison(reference, {b: measured[b] for b in sizes}, predictions, errors, notes)


def scale_lr(
    lr: float,
    batch_size: int,
    to: int,
    rule: str,
    k: float | None = None,
    noise_scale: float | None = None,
) -> float:
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
    if rule in NOISE_RULES:
        if noise_scale is None:
            raise LrkitValueError(
                f"rule {rule!r} needs the gradient noise scale B_noise (--noise-scale, or "
                "--noise-json from lrkit noise)"
            )
        if rule == "surge":
            return surge_rule(lr, batch_size, noise_scale).predict(to)
        return noise_rule(lr, batch_size, noise_scale).predict(to)
    if k is None:
        raise LrkitValueError("rule 'fit' needs an exponent k (from a sweep: --store)")
    return float(lr * ratio**k)


def scale_beta2(beta2: float, batch_size: int, to: int) -> float:
    """Adam's beta2 for batch size ``to`` that keeps the half-life of its average of squared
    gradients in examples, B ln(1/2) / ln(beta2): beta2 ** (to / batch_size) (the module's
    docstring)."""
    beta2 = check.float_in("beta2", beta2, 0.0, 1.0, low_open=True, high_open=True)
    batch_size = check.positive_int("batch_size", batch_size)
    to = check.positive_int("to", to)
    return float(beta2 ** (to / batch_size))


def beta2_half_life(beta2: float, batch_size: int) -> float:
    """Examples in which beta2's average of squared gradients forgets half of itself."""
    return batch_size * math.log(0.5) / math.log(beta2)


def scale_weight_decay(
    weight_decay: float, lr: float, new_lr: float, batch_size: int, to: int
) -> float:
    """AdamW's weight decay at batch size ``to`` and lr ``new_lr`` that keeps the timescale
    tau = B / (lr wd) examples: wd (lr / new_lr) (to / batch_size) (the module's docstring)."""
    weight_decay = check.nonnegative_float("weight_decay", weight_decay)
    lr = check.positive_float("lr", lr)
    new_lr = check.positive_float("new_lr", new_lr)
    batch_size = check.positive_int("batch_size", batch_size)
    to = check.positive_int("to", to)
    return weight_decay * (lr / new_lr) * (to / batch_size)


def weight_decay_timescale(weight_decay: float, lr: float, batch_size: int) -> float:
    """tau = B / (lr wd): the examples over which AdamW's weights average (inf with no
    decay)."""
    return batch_size / (lr * weight_decay) if weight_decay > 0 else math.inf


def best_pairs(pairs: Sequence[tuple[int, float]]) -> dict[int, float]:
    """{batch size: lr} from (batch size, lr) pairs, refusing a batch size given twice."""
    result: dict[int, float] = {}
    for batch_size, lr in pairs:
        if batch_size in result:
            raise LrkitValueError(f"batch size {batch_size} appears twice")
        result[batch_size] = lr
    return result
