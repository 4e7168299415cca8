"""``lrkit.laws.analysis``: which laws each ladder shape gets, Step Law's and DeepSeek's forms
recovered from synthetic optima, the best batch size read from the joint band, the forecast
at a target, and ladders too small refused before anything runs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.errors import LrkitValueError
from lrkit.laws.analysis import (
    COMPUTE_FACTOR,
    Target,
    analyse,
    check_ladder,
    group_runs,
    law_specs,
)
from lrkit.laws.optimum import Optimum, band_optimum, repeat_tolerance
from lrkit.laws.points import Ladder, Point


@dataclass(frozen=True)
class Fake:
    """A measured point: its optimum given, or read from bowl-shaped runs."""

    point: Point
    parameters: int
    optimum: Optimum
    runs: tuple[tuple[float, float], ...] = ()


def exact(lr: float) -> Optimum:
    """An optimum read as ``lr`` off a grid of quarter octaves."""
    return Optimum(lr, lr, lr, 1.0, 1, False, math.log(2) / 4)


def params(width: int) -> int:
    return 784 * width + width * width + 10 * width


def names(ladder: Ladder) -> list[str]:
    return [s.name for s in law_specs(ladder)]


def test_each_ladder_shape_gets_its_laws() -> None:
    assert names(Ladder((8, 16, 32, 64), (100,), (1.0,), (32,))) == ["eta*(width)"]
    assert names(Ladder((8,), (100,), (1.0, 2.0, 4.0, 8.0), (32,))) == ["eta*(D)"]
    assert names(Ladder((8,), (100, 200, 400, 800), (1.0,), (32,))) == ["eta*(D)"]
    assert names(Ladder((8, 16, 32), (100,), (1.0, 2.0), (32,))) == ["eta*(N, D)", "eta*(C)"]
    assert names(Ladder((8,), (100,), (1.0,), (16, 32, 64, 128))) == ["eta*(B)"]
    assert names(Ladder((8,), (100,), (1.0, 2.0, 4.0, 8.0), (16, 32))) == ["eta*(D)", "B*(D)"]
    assert names(Ladder((1, 2, 3, 4), (100,), (1.0,), (16, 32), "depth")) == [
        "eta*(depth)",
        "B*(C)",
    ]
    both = Ladder((8, 16, 32), (100,), (1.0, 2.0), (8, 16, 32, 64))
    assert names(both) == ["eta*(N, D)", "eta*(C)", "eta*(B)", "B*(N, D)", "B*(C)"]
    assert not next(s for s in law_specs(both) if s.name == "eta*(B)").predicts


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        (Ladder((8, 16, 32), (100,), (1.0,), (32,)), "eta*(width) needs at least 4 groups"),
        (Ladder((8, 16), (100,), (1.0, 2.0), (32,)), "eta*(N, D) needs at least 5 groups"),
        (Ladder((8,), (100,), (1.0,), (32, 64, 128)), "eta*(B) needs at least 4 groups"),
        (Ladder((8,), (100,), (1.0,), (32,)), "the ladder varies nothing"),
    ],
)
def test_a_ladder_too_small_is_refused(ladder: Ladder, message: str) -> None:
    with pytest.raises(LrkitValueError, match=re_escape(message)):
        check_ladder(ladder)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_both_horizon_axes_at_once_are_refused() -> None:
    with pytest.raises(LrkitValueError, match="ladder one of them"):
        Ladder((8,), (100, 200), (1.0, 2.0), (32,))


@settings(deadline=None)
@given(
    alpha=st.floats(-1.0, 0.5),
    beta=st.floats(-0.8, 0.3),
)
def test_step_law_and_deepseek_recover_exact_exponents(alpha: float, beta: float) -> None:
    """Optima exactly a N^alpha D^beta on a 3 x 3 grid of widths and horizons: Step Law's
    fit returns alpha and beta, its held-out check lands on the largest group, and the
    forecast at a larger target is the law's value."""
    widths, horizons = (8, 16, 32), (1.0, 2.0, 4.0)
    ladder = Ladder(widths, (100,), horizons, (32,))

    def truth(n: float, d: float) -> float:
        return 0.01 * (n / 1e4) ** alpha * (d / 100) ** beta

    rungs = [
        Fake(Point(w, 100, e, 32), params(w), exact(truth(params(w), 100 * e)))
        for w in widths
        for e in horizons
    ]
    target = Target(128, params(128), 100, 16.0)
    found = analyse(rungs, ladder, target, bootstrap=200)
    step = next(law for law in found.laws if law.spec.name == "eta*(N, D)")
    assert step.fit.exponents == pytest.approx((alpha, beta), abs=1e-6)
    assert step.held_out is not None
    assert step.held_out.values == (params(32), 400.0)
    assert step.held_out.ratio == pytest.approx(1.0, rel=1e-6)
    forecast = found.forecast
    assert forecast is not None and forecast.lr_law in {"eta*(N, D)", "eta*(C)"}
    chosen = next(law for law in found.laws if law.chosen)
    assert chosen.spec.name == forecast.lr_law
    if forecast.lr_law == "eta*(N, D)":
        assert forecast.lr.value == pytest.approx(truth(params(128), 1600), rel=1e-6)
    # DeepSeek's law in C = 6 N D sees the same groups through one variable.
    deepseek = next(law for law in found.laws if law.spec.name == "eta*(C)")
    keys = {values for values, _ in deepseek.fit.groups}
    assert keys == {(COMPUTE_FACTOR * params(w) * 100 * e,) for w in widths for e in horizons}


def test_deepseek_wins_where_the_optimum_follows_compute_alone() -> None:
    """Optima exactly a C^-0.25 plus a small wobble in N alone: both fit, and the choice by
    held-out error is reported; an exactly-C law makes Step Law's exponents equal."""
    widths, horizons = (8, 16, 32), (1.0, 2.0, 4.0)
    ladder = Ladder(widths, (100,), horizons, (32,))
    rungs = [
        Fake(
            Point(w, 100, e, 32),
            params(w),
            exact(0.5 * (COMPUTE_FACTOR * params(w) * 100 * e) ** -0.25),
        )
        for w in widths
        for e in horizons
    ]
    found = analyse(rungs, ladder, bootstrap=200)
    step = next(law for law in found.laws if law.spec.name == "eta*(N, D)")
    assert step.fit.exponents == pytest.approx((-0.25, -0.25), abs=1e-6)
    deepseek = next(law for law in found.laws if law.spec.name == "eta*(C)")
    assert deepseek.fit.exponents[0] == pytest.approx(-0.25, abs=1e-6)
    assert found.forecast is None


def test_the_best_batch_size_is_read_from_the_joint_band() -> None:
    """Loss a bowl in ln lr and ln B with its bottom at (lr*, B*): the group's best batch size
    is the band's centre over (B, loss) and its lr the band's over (lr, loss); B*(D) = c D^0.5
    is recovered from four horizons."""
    lrs = [0.001 * 2 ** (k / 4) for k in range(24)]
    batches = (16, 32, 64, 128, 256)
    horizons = (1.0, 2.0, 4.0, 8.0)

    def loss(lr: float, b: int, e: float) -> float:
        b_star = 32 * math.sqrt(e)
        return 1.0 + 0.3 * math.log(lr / 0.01) ** 2 + 0.3 * math.log(b / b_star) ** 2

    rungs = []
    for e in horizons:
        for b in batches:
            runs = tuple((lr, loss(lr, b, e)) for lr in lrs)
            rungs.append(Fake(Point(8, 100, e, b), 1000, band_optimum(runs), runs))
    groups = group_runs(rungs)
    assert [g.epochs for g in groups] == list(horizons)
    for g in groups:
        assert g.batch_size is not None
        # 32 sqrt(e) is a grid point (e = 1, 4) or the log midpoint of two (e = 2, 8): the
        # band holds the nearest, or both equally, and its centre is 32 sqrt(e) either way.
        assert g.batch_size.lr == pytest.approx(32 * math.sqrt(g.epochs))
        assert g.lr.lr == pytest.approx(min(lrs, key=lambda lr: abs(math.log(lr / 0.01))))
        assert [b for b, _ in g.by_batch] == list(batches)
    ladder = Ladder((8,), (100,), horizons, batches)
    found = analyse(rungs, ladder, Target(8, 1000, 100, 16.0), bootstrap=200)
    b_law = next(law for law in found.laws if law.spec.name == "B*(D)")
    assert b_law.chosen and b_law.fit.variables == ("D",)
    assert b_law.fit.exponents[0] == pytest.approx(0.5, abs=1e-6)
    assert found.forecast is not None and found.forecast.batch_size is not None
    assert found.forecast.batch_law == "B*(D)" and found.forecast.at_batch_size is None


def test_a_batch_ladder_alone_predicts_the_lr_at_a_batch_size() -> None:
    """Optimum lr exactly rising then falling in ln B (Adam's surge: Li et al. 2025): the
    log-quadratic form is chosen by held-out error, and the lr is predicted at the batch
    size asked for."""
    batches = (16, 32, 64, 128, 256, 512)

    def optimum(b: int) -> float:
        u = math.log(b / 64)
        return 0.002 * math.exp(0.8 * u - 0.3 * u * u)

    lrs = [1e-4 * 2 ** (k / 8) for k in range(80)]
    rungs = []
    for b in batches:
        runs = tuple((lr, 1.0 + 0.2 * math.log(lr / optimum(b)) ** 2) for lr in lrs)
        rungs.append(Fake(Point(8, 1000, 1.0, b), 1000, band_optimum(runs), runs))
    ladder = Ladder((8,), (1000,), (1.0,), batches)
    found = analyse(rungs, ladder, Target(8, 1000, 1000, 1.0, 1024), bootstrap=200)
    (law,) = found.laws
    assert law.spec.name == "eta*(B)" and law.chosen and law.fit.form == "log-quadratic"
    assert found.forecast is not None and found.forecast.at_batch_size == 1024
    u = math.log(1024 / 64)
    assert found.forecast.lr.value == pytest.approx(
        0.002 * math.exp(0.8 * u - 0.3 * u * u), rel=0.1
    )


def test_the_noise_band_by_hand() -> None:
    """Repeats at three lrs (one with a diverged repeat, left out): the pooled variance of the
    two finite ones, by hand."""
    repeats = [(0.01, [1.00, 1.02]), (0.02, [1.04, 1.08]), (0.04, [math.inf, 2.0])]
    variance = ((0.01**2 * 2) / 1 + (0.02**2 * 2) / 1) / 2
    expected = math.sqrt(variance * 2 / 2) / 1.01
    assert repeat_tolerance(repeats) == pytest.approx(expected)
    assert repeat_tolerance([(0.01, [1.0]), (0.02, [1.1])]) == 0.0025  # one repeat: the floor
    assert repeat_tolerance([(0.01, [1.0, 1.0]), (0.02, [1.1, 1.1])]) == 0.0025  # no noise
