"""``lrkit.laws``: the band optimum by hand, power laws recovered from synthetic optima, the
bootstrap intervals' coverage, predictions' warnings, the held-out check, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.errors import LrkitValueError
from lrkit.laws import FitSettings, band_optimum, check_largest, choose_law, fit_law
from lrkit.laws.optimum import Optimum
from lrkit.laws.words import figure


def bowl(
    eta: float,
    steps: range = range(-8, 9),
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
) -> list[tuple[float, float]]:
    """Runs on a grid of quarter octaves around ``eta``: loss 1 + 0.05 log2(lr / eta)^2."""
    runs = []
    for k in steps:
        lr = eta * 2 ** (k / 4)
        extra = rng.normal(0.0, noise) if rng is not None else 0.0
        runs.append((lr, 1.0 + 0.05 * math.log2(lr / eta) ** 2 + extra))
    return runs


def test_the_band_by_hand() -> None:
    runs = [(0.1, 1.0), (0.2, 0.9), (0.4, 0.9018), (0.8, 1.2), (1.6, math.inf)]
    found = band_optimum(runs, 0.0025)  # 0.9 * 1.0025 = 0.90225: 0.2 and 0.4
    assert found.lr == pytest.approx(math.sqrt(0.2 * 0.4))
    assert (found.low, found.high, found.runs, found.best_loss) == (0.2, 0.4, 2, 0.9)
    assert not found.at_edge
    assert band_optimum(runs, 0.0).lr == 0.2  # no tolerance: the single best run
    assert band_optimum([(0.1, 0.5), (0.2, 0.6)]).at_edge  # the best at the grid's end
    assert band_optimum(runs, 0.5).runs == 4  # up to 1.35: the diverged run never enters
    with pytest.raises(LrkitValueError, match="no run of the group has a finite loss"):
        band_optimum([(0.1, math.inf), (0.2, math.nan)])
    with pytest.raises(LrkitValueError, match="losses must be positive"):
        band_optimum([(0.1, -1.0), (0.2, 0.5)])


@given(
    a=st.floats(1e-3, 10.0),
    alpha=st.floats(-1.5, 1.0),
    beta=st.floats(-1.0, 0.5),
)
@settings(deadline=None)
def test_exact_optima_give_back_the_law(a: float, alpha: float, beta: float) -> None:
    """eta(N, D) = a N^alpha D^beta, each group's grid symmetric about its optimum: the band's
    centre is the optimum, and the fit returns a, alpha and beta."""
    truth = {(n, d): a * n**alpha * d**beta for n in (32.0, 64.0, 128.0) for d in (1e5, 1e6)}
    fit = fit_law({k: bowl(v) for k, v in truth.items()}, ["N", "D"], FitSettings(bootstrap=200))
    assert fit.coefficient == pytest.approx(a, rel=1e-6)
    assert fit.exponents == pytest.approx((alpha, beta), abs=1e-6)
    assert fit.predict(1024.0, 1e7).value == pytest.approx(a * 1024**alpha * 1e7**beta, rel=1e-5)


def test_noisy_optima_recover_the_exponent_within_its_interval() -> None:
    rng = np.random.default_rng(3)
    widths = (32.0, 64.0, 128.0, 256.0, 512.0)
    groups = {(w,): bowl(0.5 * w**-0.6, rng=rng, noise=0.002) for w in widths}
    fit = fit_law(groups, ["width"], FitSettings(seed=1))
    ((low, high),) = fit.exponent_intervals
    assert low < -0.6 < high and high - low < 0.2
    assert abs(fit.exponents[0] + 0.6) < 0.1


def fixed_grid(eta: float, rng: np.random.Generator, noise: float) -> list[tuple[float, float]]:
    """The bowl of ``bowl`` read on one grid for every group (quarter octaves from 1e-4,
    those within two octaves of ``eta``): the optimum falls between grid points."""
    lrs = [1e-4 * 2 ** (k / 4) for k in range(60)]
    return [
        (lr, 1.0 + 0.05 * math.log2(lr / eta) ** 2 + rng.normal(0.0, noise))
        for lr in lrs
        if abs(math.log2(lr / eta)) <= 2
    ]


def coverage(widths: tuple[float, ...], datasets: int) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    covered = predicted = 0
    for seed in range(datasets):
        groups = {(w,): fixed_grid(0.5 * w**-0.6, rng, 0.002) for w in widths}
        fit = fit_law(groups, ["width"], FitSettings(bootstrap=400, seed=seed))
        low, high = fit.exponent_intervals[0]
        covered += low <= -0.6 <= high
        p = fit.predict(4096.0)
        predicted += p.low <= 0.5 * 4096**-0.6 <= p.high
    return covered / datasets, predicted / datasets


def test_the_90_percent_intervals_cover_the_truth_about_90_percent_of_the_time() -> None:
    """1,000 synthetic ladders (6 widths, each optimum read off a noisy fixed grid): the
    exponent's and the prediction's intervals cover the truth within 3 binomial standard
    errors (0.0095) of 0.90. (The residual bootstrap, tried first, covers 0.85 here.)"""
    exponent, prediction = coverage((32.0, 64.0, 128.0, 256.0, 512.0, 1024.0), 1000)
    assert 0.8715 <= exponent <= 0.9285, exponent
    assert 0.8715 <= prediction <= 0.9285, prediction


def test_predictions_warn_when_wide_or_far_out() -> None:
    rng = np.random.default_rng(0)
    groups = {(w,): bowl(0.5 * w**-0.6, rng=rng, noise=0.002) for w in (64.0, 128.0, 256.0, 512.0)}
    fit = fit_law(groups, ["width"])
    near = fit.predict(1024.0)  # one octave past 512: the range spans three
    assert near.low < near.value < near.high and near.warnings == ()
    far = fit.predict(65536.0)
    assert any("far outside the fitted 64 .. 512" in w for w in far.warnings)
    scattered = {
        (w,): bowl(0.5 * w**-0.6 * f)
        for w, f in zip((64.0, 128.0, 256.0, 512.0), (1, 3, 0.4, 2), strict=True)
    }
    wide = fit_law(scattered, ["width"]).predict(1024.0)
    assert wide.width > 2 and any("wider than 2" in w for w in wide.warnings)
    assert wide.measured_low < wide.low and wide.measured_high > wide.high
    with pytest.raises(LrkitValueError, match="one value for each of width"):
        fit.predict(1.0, 2.0)


def test_the_held_out_check_predicts_the_largest_rung() -> None:
    widths = (32.0, 64.0, 128.0, 256.0, 512.0)
    rng = np.random.default_rng(5)
    lawful = {(w,): bowl(0.5 * w**-0.6, rng=rng, noise=0.002) for w in widths}
    held = check_largest(lawful, ["width"])
    assert held.values == (512.0,) and held.within and abs(math.log(held.ratio)) < math.log(1.3)
    broken = dict(lawful)
    broken[(512.0,)] = bowl(3 * 0.5 * 512**-0.6)  # the law breaks at the largest rung
    off = check_largest(broken, ["width"])
    assert not off.within and off.ratio == pytest.approx(1 / 3, rel=0.2)


def test_bad_ladders_are_refused() -> None:
    runs = bowl(0.1)
    with pytest.raises(LrkitValueError, match="needs at least 3 groups"):
        fit_law({(32.0,): runs, (64.0,): runs}, ["width"])
    with pytest.raises(LrkitValueError, match="positive value for each of width"):
        fit_law({(32.0,): runs, (0.0,): runs, (64.0,): runs}, ["width"])
    with pytest.raises(LrkitValueError, match="do not vary N, D independently"):
        fit_law({(n, 10 * n): runs for n in (8.0, 16.0, 32.0, 64.0)}, ["N", "D"])
    with pytest.raises(LrkitValueError, match="bootstrap must be"):
        fit_law({(n,): runs for n in (8.0, 16.0, 32.0)}, ["width"], FitSettings(bootstrap=10))


def test_a_rise_then_fall_chooses_the_log_quadratic_form() -> None:
    """ln eta* = ln 0.01 + 0.8 l - 0.1 l^2 in l = ln B (Adam's best lr rising, then falling
    with the batch size): the held-out error picks the log-quadratic form and recovers it;
    on a power law's optima the power law stays."""
    sizes = (16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)

    def quadratic(b: float) -> float:
        return 0.01 * math.exp(0.8 * math.log(b) - 0.1 * math.log(b) ** 2)

    bent = {(b,): bowl(quadratic(b)) for b in sizes}
    chosen = choose_law(bent, ["batch_size"], FitSettings(bootstrap=200))
    assert chosen.form == "log-quadratic"
    assert chosen.exponents == pytest.approx((0.8, -0.1), abs=1e-6)
    assert chosen.predict(2048.0).value == pytest.approx(quadratic(2048.0), rel=1e-6)
    forms = dict(chosen.compared)
    assert forms["log-quadratic"] < 1e-6 < forms["power"]
    straight = {(b,): bowl(0.01 * b**0.5) for b in sizes}
    assert choose_law(straight, ["batch_size"], FitSettings(bootstrap=200)).form == "power"
    few = {(b,): bowl(quadratic(b)) for b in sizes[:4]}  # too few to leave one out of three
    assert [f for f, _ in choose_law(few, ["batch_size"], FitSettings(bootstrap=200)).compared] == [
        "power"
    ]
    with pytest.raises(LrkitValueError, match="log-quadratic form takes one variable"):
        fit_law(
            {(n, d): bowl(0.1) for n in (8.0, 16.0) for d in (1.0, 2.0)},
            ["N", "D"],
            form="log-quadratic",
        )


QUARTER_OCTAVE = math.log(2) / 4


def test_an_exact_fit_on_a_grid_has_the_grids_resolution() -> None:
    """Optima on a law and on the grid (each band one run): zero residual, so every refit's
    scatter is the reading's, r = spacing^2 / 24, and the exponent's interval is the normal
    one of a known variance, alpha -+ 1.645 sqrt(r / sum (ln w - mean)^2)."""
    widths = (32.0, 64.0, 128.0, 256.0)
    fit = fit_law(
        {(w,): bowl(0.5 * w**-0.5) for w in widths}, ["width"], FitSettings(bootstrap=20000)
    )
    logs = np.log(widths)
    half = 1.645 * math.sqrt(QUARTER_OCTAVE**2 / 24 / float(np.sum((logs - logs.mean()) ** 2)))
    ((low, high),) = fit.exponent_intervals
    assert fit.residual_variance < 1e-20 and fit.at_resolution
    assert fit.reading_variance == pytest.approx(QUARTER_OCTAVE**2 / 24)
    assert low == pytest.approx(-0.5 - half, rel=0.02) and high == pytest.approx(
        -0.5 + half, rel=0.02
    )


def test_a_group_measured_where_an_exact_law_predicts_is_within() -> None:
    widths = (32.0, 64.0, 128.0, 256.0, 512.0)
    held = check_largest({(w,): bowl(0.5 * w**-0.5) for w in widths}, ["width"])
    assert held.ratio == pytest.approx(1.0)
    p = held.prediction  # where a measurement falls: at least the reading's spread
    assert p.measured_high / p.measured_low > math.exp(2 * 1.645 * QUARTER_OCTAVE / math.sqrt(24))
    assert held.within


@given(
    steps=st.lists(st.integers(-3, 3), min_size=4, max_size=7),
    per_octave=st.integers(1, 8),
    centre=st.floats(1e-4, 1.0),
)
@settings(deadline=None)
def test_no_interval_is_ever_of_zero_width(
    steps: list[int], per_octave: int, centre: float
) -> None:
    """Ladders whose optima all lie on one grid (the same point at every width included):
    the exponent's, the coefficient's and a prediction's intervals all have width."""
    spacing = math.log(2) / per_octave
    groups = {
        (16.0 * 2**i,): Optimum(lr, lr, lr, 1.0, 1, False, spacing)
        for i, lr in enumerate(centre * 2 ** (k / per_octave) for k in steps)
    }
    fit = fit_law(groups, ["width"], FitSettings(bootstrap=200))
    ((low, high),) = fit.exponent_intervals
    assert low < fit.exponents[0] < high
    assert fit.coefficient_interval[0] < fit.coefficient < fit.coefficient_interval[1]
    p = fit.predict(16.0 * 2 ** len(steps))
    assert p.low < p.value < p.high and p.measured_low < p.low and p.high < p.measured_high


def test_an_optimum_carries_the_grids_spacing_about_its_band() -> None:
    runs = [(0.1, 1.0), (0.2, 0.9), (0.4, 0.9018), (1.6, 1.2), (3.2, math.inf)]
    found = band_optimum(runs)  # the band 0.2 .. 0.4: a gap of ln 2 below, ln 4 above
    assert found.spacing == pytest.approx(1.5 * math.log(2))
    assert found.reading_variance == pytest.approx((1.5 * math.log(2)) ** 2 / 24)
    low, high = found.reading
    assert low == pytest.approx(found.lr * 2**-0.75) and high == pytest.approx(found.lr * 2**0.75)
    as_json = found.to_json()
    assert as_json["spacing"] == found.spacing and as_json["reading"] == [low, high]
    edge = band_optimum([(0.1, 0.5), (0.2, 0.6), (0.8, 0.7)])  # at the grid's end: one gap
    assert edge.at_edge and edge.spacing == pytest.approx(math.log(2))
    flat = band_optimum([(0.1, 0.5), (0.2, 0.5), (0.8, 0.5)])  # the band is the grid
    assert flat.spacing == pytest.approx(math.log(8) / 2)


def test_an_optimum_needs_a_grid() -> None:
    with pytest.raises(LrkitValueError, match="runs at two or more learning rates"):
        band_optimum([(0.1, 0.5), (0.1, 0.6)])
    with pytest.raises(LrkitValueError, match="spacing must be a finite number > 0"):
        Optimum(0.1, 0.1, 0.1, 1.0, 1, False, 0.0)


def test_a_reading_of_the_spacing_scatters_as_its_variance_says() -> None:
    """Noise-free bowls whose optimum falls anywhere between grid points: the band centres
    scatter about the truth with about spacing^2 / 24 (the mean of two uniforms)."""
    rng = np.random.default_rng(0)
    errors = [
        math.log(band_optimum(fixed_grid(eta, rng, 0.0)).lr / eta)
        for eta in 0.01 * 2 ** rng.uniform(0.0, 4.0, size=2000)
    ]
    assert float(np.mean(np.square(errors))) == pytest.approx(QUARTER_OCTAVE**2 / 24, rel=0.15)


@pytest.mark.parametrize(
    ("value", "interval", "written"),
    [
        (-1.09e-15, (-0.11, 0.11), "0"),  # float noise in an exact fit
        (1.09e-15, (-0.11, 0.11), "0"),
        (-0.5, (-0.52, -0.48), "-0.5"),
        (1.2345, (1.0, 1.5), "1.23"),
        (-0.0123, (-0.3, 0.3), "-0.012"),
        (2.5e-5, (2.4e-5, 2.6e-5), "2.5e-05"),
        (0.0, (0.0, 0.0), "0"),
    ],
)
def test_a_figure_is_written_to_its_intervals_precision(
    value: float, interval: tuple[float, float], written: str
) -> None:
    assert figure(value, interval) == written
