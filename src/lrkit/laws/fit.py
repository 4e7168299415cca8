"""Power laws in the groups' optima, with bootstrap intervals, predictions and a held-out
check.

Each group of runs (one model size, horizon or batch size: its values of the law's
variables) gives an optimum (``laws.optimum.band_optimum``); the law is fitted to them by
least squares on logs:

    ln y = ln a + sum_i alpha_i ln v_i        y = a * prod_i v_i ** alpha_i

Step Law's eta(N, D) = a N^alpha D^beta and B(D) = c D^gamma (Li et al. 2025) and
DeepSeek's eta(C) = a C^b, B(C) = c C^d (2024) are this form with one or two variables.
Where the data disagree with a power law (the best lr of Adam first rising, then falling
with the batch size: Li et al. 2025; Porian et al. 2024), one variable may take the
log-quadratic form ln y = ln a + b ln v + c (ln v)^2 (each form an entry of
``laws.forms.FORMS``); ``choose_law`` fits every form that the variables and groups allow and
keeps the one of lower leave-one-out error (the groups' ln optima predicted from the others,
root mean square), the power law on a tie.

Intervals: a parametric bootstrap that carries the uncertainty of the residual variance
too: each refit draws sigma*^2 = s^2 df / chi2_df (s^2 = SSE / df, df = n - p for n groups
and p parameters) and then (ln a, alpha)* ~ N(fit, sigma*^2 (X'X)^-1), which is the
posterior of the least-squares fit under a flat prior (Gelman et al., Bayesian Data
Analysis, section 14.2) and gives Student-t intervals: exact under normal errors at any n.
A reading off a grid is never known better than the grid resolves it
(``Optimum.reading_variance``, spacing^2 / 24 on a log scale), so no refit's scatter falls
below the groups' mean reading variance r:

    sigma*^2 = max(r, s^2 df / chi2_df)

Where the optima land on the grid and fit the law exactly (s = 0), every refit takes
sigma* = sqrt(r): normal intervals of the grid's resolution, the exponent's
+-z sqrt(r / sum (ln v - mean)^2) for one variable, never of zero width; where the residual
is larger than the grid's resolution, the Student-t intervals stand as they were.
On synthetic optima read off a noisy fixed grid (``tests/test_laws_fit.py``) the 90%
intervals cover the truth 91% (exponent) and 92% (prediction) of the time with 6 groups, 94%
and 92% with 4 (89% and 90%, 86% and 86% without the floor: with 4 groups the residual alone
is too unsure of the scatter).
A residual bootstrap (Efron & Tibshirani 1993, section 9.5) was tried first and covered 76%
(4 groups) and 85% (6 and 8 groups) of the truth at a stated 90% on synthetic optima: with so
few groups the spread of the residuals is itself uncertain, which it ignores. The interval of
a prediction is the central ``level`` of the refits' predictions (where the law puts the
optimum); its ``measured_interval`` adds a draw of the reading noise (where one more group's
measured optimum would fall), what the held-out check compares with. Both assume the power
law is the right shape; the held-out check (``check_largest``) tests that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from lrkit import validation as check
from lrkit.errors import LrkitValueError
from lrkit.laws.forms import FORMS, POWER, LawForm, checked_form
from lrkit.laws.optimum import STEP_LAW_TOLERANCE, Optimum, band_optimum

WIDE_INTERVAL = 2.0
"""A prediction whose interval spans more than this factor is called wide."""
DEFAULT_BOOTSTRAP = 2000
DEFAULT_LEVEL = 0.9

Runs = Sequence[tuple[float, float]]
Group = Runs | Optimum
"""A group's (lr, loss) runs, or its optimum already read (a band widened to the noise of
repeats: ``optimum.repeat_tolerance``)."""


def group_optimum(group: Group, tolerance: float) -> Optimum:
    """The group's optimum: as given, or read from its runs' band."""
    return group if isinstance(group, Optimum) else band_optimum(group, tolerance)


@dataclass(frozen=True)
class FitSettings:
    """How ``fit_law``, ``choose_law`` and ``check_largest`` fit a law, checked when made.

    Args:
        tolerance: the band of a group given as runs: those within this fraction of its
            best loss (``optimum.band_optimum``; Step Law's 0.25% by default).
        bootstrap: refits drawn for the intervals (at least 100).
        level: the central fraction of the refits an interval holds, in (0, 1).
        seed: seeds the refits' draws.
    """

    tolerance: float = STEP_LAW_TOLERANCE
    bootstrap: int = DEFAULT_BOOTSTRAP
    level: float = DEFAULT_LEVEL
    seed: int = 0

    def __post_init__(self) -> None:
        bootstrap = check.int_at_least("bootstrap", self.bootstrap, 100, "an interval needs refits")
        object.__setattr__(self, "bootstrap", bootstrap)
        check.float_in("level", self.level, 0.0, 1.0, low_open=True, high_open=True)


@dataclass(frozen=True)
class Prediction:
    """A predicted optimum at ``values``, with its interval and any warnings."""

    values: tuple[float, ...]
    value: float
    low: float
    high: float
    level: float
    warnings: tuple[str, ...]
    measured_low: float = math.nan
    measured_high: float = math.nan
    """Where a group measured there would put its optimum: the law's interval widened by
    the groups' own scatter about the law (the reading noise of an optimum)."""

    @property
    def width(self) -> float:
        """high / low: the interval as a factor."""
        return self.high / self.low

    def to_json(self) -> dict[str, object]:
        return {
            "values": list(self.values),
            "value": self.value,
            "interval": [self.low, self.high],
            "measured_interval": [self.measured_low, self.measured_high],
            "level": self.level,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class LawFit:
    """y = coefficient * prod(v_i ** exponent_i), fitted to the groups' optima."""

    variables: tuple[str, ...]
    coefficient: float
    exponents: tuple[float, ...]
    coefficient_interval: tuple[float, float]
    exponent_intervals: tuple[tuple[float, float], ...]
    level: float
    groups: tuple[tuple[tuple[float, ...], Optimum], ...]
    """Each group's values of the variables and its optimum, as fitted."""
    draws: tuple[tuple[float, ...], ...]
    """The bootstrap refits: (ln a, alpha_1, ...) each."""
    scatter: tuple[float, ...]
    """Each refit's sigma*: the scatter of a group's ln optimum about the law."""
    residual_variance: float
    """s^2 = SSE / df: the groups' scatter about the law."""
    reading_variance: float
    """r: the groups' mean ``Optimum.reading_variance``, the floor of every refit's
    scatter."""
    form: str = POWER.name
    """The name of its ``forms.FORMS`` entry: power, or log-quadratic (one variable;
    ``exponents`` are then b and c)."""
    held_out_error: float = math.nan
    """Root mean square of the ln optima each predicted from the other groups (nan where
    too few groups leave one out)."""
    compared: tuple[tuple[str, float], ...] = ()
    """``choose_law``: each form tried and its held-out error."""

    @property
    def law_form(self) -> LawForm:
        """The form fitted (``form``'s entry of ``forms.FORMS``)."""
        return FORMS[self.form]

    @property
    def at_resolution(self) -> bool:
        """The optima fit the law more closely than the grid reads them (s^2 < r): the
        intervals are the grid's resolution, not the scatter's."""
        return self.residual_variance < self.reading_variance

    def predict(self, *values: float) -> Prediction:
        """The optimum at ``values`` (one per variable), the central ``level`` of the
        refits' predictions as its interval, and a warning where that is wider than a factor
        of ``WIDE_INTERVAL`` or ``values`` lie far outside the fitted range (further beyond
        it, on a log scale, than the range is wide)."""
        if len(values) != len(self.variables):
            raise LrkitValueError(
                f"give one value for each of {', '.join(self.variables)}; got {len(values)}"
            )
        logs = [
            math.log(check.positive_float(n, v))
            for n, v in zip(self.variables, values, strict=True)
        ]
        row = self.law_form.design(np.array([logs]))[0]
        value = math.exp(math.log(self.coefficient) + float(np.dot(self.exponents, row[1:])))
        law = np.array(self.draws) @ row
        tail = (1.0 - self.level) / 2.0
        low, high = (float(math.exp(q)) for q in np.quantile(law, [tail, 1.0 - tail]))
        noise = np.random.default_rng(len(self.draws)).standard_normal(len(law))
        measured = law + np.array(self.scatter) * noise
        measured_low, measured_high = (
            float(math.exp(q)) for q in np.quantile(measured, [tail, 1.0 - tail])
        )
        warnings = []
        if high / low > WIDE_INTERVAL:
            warnings.append(
                f"the {self.level:.0%} interval spans a factor of {high / low:.3g} (wider than "
                f"{WIDE_INTERVAL:g}): the fit cannot place the optimum closely"
            )
        for i, (name, v) in enumerate(zip(self.variables, values, strict=True)):
            fitted = [g[0][i] for g in self.groups]
            lo, hi = min(fitted), max(fitted)
            span = math.log(hi / lo)
            beyond = max(math.log(lo / v), math.log(v / hi), 0.0)
            if beyond > span:
                warnings.append(
                    f"{name} {v:g} lies far outside the fitted {lo:g} .. {hi:g} (a factor of "
                    f"{math.exp(beyond):.3g} beyond it): an extrapolation the data do not test"
                )
        return Prediction(
            tuple(values),
            value,
            low,
            high,
            self.level,
            tuple(warnings),
            measured_low,
            measured_high,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "variables": list(self.variables),
            "coefficient": self.coefficient,
            "form": self.form,
            "exponents": list(self.exponents),
            "held_out_error": None if math.isnan(self.held_out_error) else self.held_out_error,
            "compared": [list(c) for c in self.compared],
            "residual_variance": self.residual_variance,
            "reading_variance": self.reading_variance,
            "coefficient_interval": list(self.coefficient_interval),
            "exponent_intervals": [list(i) for i in self.exponent_intervals],
            "level": self.level,
            "groups": [
                {"values": list(values), "optimum": optimum.to_json()}
                for values, optimum in self.groups
            ],
            "bootstrap": len(self.draws),
        }


@dataclass(frozen=True)
class HeldOutCheck:
    """The largest group predicted from the others, against its measured optimum."""

    values: tuple[float, ...]
    prediction: Prediction
    measured: Optimum

    @property
    def ratio(self) -> float:
        """predicted / measured."""
        return self.prediction.value / self.measured.lr

    @property
    def within(self) -> bool:
        """The measured optimum lies where a measured one was predicted to fall
        (``Prediction.measured_low`` .. ``measured_high``)."""
        return self.prediction.measured_low <= self.measured.lr <= self.prediction.measured_high

    def to_json(self) -> dict[str, object]:
        return {
            "values": list(self.values),
            "prediction": self.prediction.to_json(),
            "measured": self.measured.to_json(),
            "ratio": self.ratio,
            "within": self.within,
        }


def held_out_error(design: np.ndarray, target: np.ndarray) -> float:
    """Root mean square error of each row's target predicted by the fit to the other rows
    (nan where the others cannot determine the fit)."""
    errors = []
    for i in range(len(target)):
        keep = np.arange(len(target)) != i
        solution = least_squares(design[keep], target[keep])
        if solution is None:
            return math.nan
        errors.append(float(design[i] @ solution - target[i]))
    return math.sqrt(sum(e * e for e in errors) / len(errors))


def least_squares(design: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """The least-squares solution, or None where ``design`` is rank deficient."""
    solution, _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
    return solution if rank == design.shape[1] else None


def fit_law(
    groups: Mapping[tuple[float, ...], Group],
    variables: Sequence[str],
    settings: FitSettings | None = None,
    *,
    form: str = POWER.name,
) -> LawFit:
    """Fit the law of the module's docstring (``form``: the name of a ``forms.FORMS`` entry)
    to ``groups`` (each key the group's values of ``variables``, each value its (lr, loss)
    runs, or its optimum)."""
    settings = settings or FitSettings()
    names = tuple(variables)
    if not names:
        raise LrkitValueError("a law needs at least one variable")
    law = checked_form(form, len(names))
    parameters = law.parameters(len(names))
    keys = checked_keys(groups, names, parameters)
    optima = [group_optimum(groups[key], settings.tolerance) for key in keys]
    design = law.design(np.log(np.array(keys, dtype=float)))
    target = np.log([o.lr for o in optima])
    solution = least_squares(design, target)
    if solution is None:
        raise LrkitValueError(
            f"the groups do not vary {', '.join(names)} independently: the law cannot be fitted"
        )
    df = len(keys) - parameters
    variance = float(np.sum((target - design @ solution) ** 2)) / df
    reading = float(np.mean([o.reading_variance for o in optima]))
    scatter, table = refits(design, solution, reading, variance, df, settings)
    tail = (1.0 - settings.level) / 2.0
    lows, highs = np.quantile(table, tail, axis=0), np.quantile(table, 1.0 - tail, axis=0)
    return LawFit(
        variables=names,
        coefficient=math.exp(solution[0]),
        exponents=tuple(float(e) for e in solution[1:]),
        coefficient_interval=(math.exp(lows[0]), math.exp(highs[0])),
        exponent_intervals=tuple(
            (float(lo), float(hi)) for lo, hi in zip(lows[1:], highs[1:], strict=True)
        ),
        level=settings.level,
        groups=tuple(zip([tuple(k) for k in keys], optima, strict=True)),
        draws=tuple(tuple(float(x) for x in d) for d in table),
        scatter=tuple(float(x) for x in scatter),
        form=law.name,
        held_out_error=held_out_error(design, target),
        residual_variance=variance,
        reading_variance=reading,
    )


def checked_keys(
    groups: Mapping[tuple[float, ...], Group], names: tuple[str, ...], parameters: int
) -> list[tuple[float, ...]]:
    """The groups' keys, refused unless there is one group more than ``parameters`` (for an
    interval) and each key gives a positive value for each of ``names``."""
    if len(groups) < parameters + 1:
        raise LrkitValueError(
            f"a law in {', '.join(names)} needs at least {parameters + 1} groups (one more than "
            f"its {parameters} parameters, for an interval); got {len(groups)}"
        )
    keys = list(groups)
    for key in keys:
        if len(key) != len(names) or not all(v > 0 for v in key):
            raise LrkitValueError(
                f"group {key} must give a positive value for each of {', '.join(names)}"
            )
    return keys


def refits(
    design: np.ndarray,
    solution: np.ndarray,
    reading: float,
    variance: float,
    df: int,
    settings: FitSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap of the module's docstring: each refit's scatter
    sigma* = sqrt(max(r, s^2 df / chi2_df)) and its parameters
    (ln a, alpha)* ~ N(solution, sigma*^2 (X'X)^-1), one row a refit."""
    root = np.linalg.cholesky(np.linalg.inv(design.T @ design))
    rng = np.random.default_rng(settings.seed)
    draws = settings.bootstrap
    scatter = np.sqrt(np.maximum(reading, variance * df / rng.chisquare(df, size=draws)))
    noise = rng.standard_normal((draws, design.shape[1])) @ root.T
    return scatter, solution + noise * scatter[:, None]


def choose_law(
    groups: Mapping[tuple[float, ...], Group],
    variables: Sequence[str],
    settings: FitSettings | None = None,
) -> LawFit:
    """The power law, or another form of ``forms.FORMS`` where its held-out error is lower
    (see the module's docstring): each form that takes this many variables and has enough
    groups to fit it with an interval from each group but one (5 for the log-quadratic's
    three parameters, each fit from four)."""
    count = len(tuple(variables))
    forms = [
        form
        for form in FORMS.values()
        if form is POWER
        or (form.takes in (None, count) and len(groups) >= form.parameters(count) + 2)
    ]
    fits = [fit_law(groups, variables, settings, form=form.name) for form in forms]
    compared = tuple((f.form, f.held_out_error) for f in fits)
    best = fits[0]
    for other in fits[1:]:
        if other.held_out_error < best.held_out_error - 1e-9:
            best = other
    return replace(best, compared=compared)


def largest_group(keys: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    """The group furthest out: the largest product of its values (the largest first value
    on a tie), the run a ladder stands in for."""
    return max(keys, key=lambda key: (sum(math.log(v) for v in key), key))


def check_largest(
    groups: Mapping[tuple[float, ...], Group],
    variables: Sequence[str],
    settings: FitSettings | None = None,
    *,
    form: str = POWER.name,
) -> HeldOutCheck:
    """Hold out the largest group (``largest_group``), fit the rest (``fit_law`` in
    ``form``), and predict it."""
    settings = settings or FitSettings()
    largest = largest_group(list(groups))
    rest = {key: runs for key, runs in groups.items() if key != largest}
    fit = fit_law(rest, variables, settings, form=form)
    return HeldOutCheck(
        tuple(largest), fit.predict(*largest), group_optimum(groups[largest], settings.tolerance)
    )
