"""The figures of ``lrkit laws``, read back from the drawn axes: each group's optimum and its
band where the fit put them, the line where ``LawFit.predict`` puts the law and the shaded
band where it puts the interval, the prediction and the held-out group marked with the
verdict, a line per value of a second variable, and the held-out plot about y = x."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest

from law_ladders import (
    WIDTHS,
    bowl,
    fit,
    held_out,
    two_variable_groups,
    width_groups,
    width_optimum,
)
from lrkit.errors import LrkitValueError
from lrkit.laws import HeldOutCheck, LawFit, Optimum
from lrkit.laws.words import law_formula, law_intervals
from lrkit.plots.figure import pyplot, save
from lrkit.plots.laws import plot_held_out, plot_law

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures() -> Any:
    yield
    pyplot().close("all")


@pytest.fixture(scope="module")
def width_fit() -> LawFit:
    return fit(width_groups(), ["width"])


@pytest.fixture(scope="module")
def two_fit() -> LawFit:
    return fit(two_variable_groups(), ["N", "D"])


def container(ax: Any, starts: str) -> Any:
    """The one error-bar container whose label starts with ``starts``."""
    (found,) = [c for c in ax.containers if c.get_label().startswith(starts)]
    return found


def points(ax: Any, starts: str) -> list[tuple[float, float]]:
    """The markers of every error-bar container whose label (shown or hidden by a leading
    underscore) starts with ``starts``."""
    found = []
    for c in ax.containers:
        if c.get_label().lstrip("_").startswith(starts) and c.lines[0] is not None:
            found += [tuple(xy) for xy in c.lines[0].get_xydata()]
    return sorted(found)


def bars(c: Any) -> np.ndarray:
    """Each vertical bar of a container: (x, bottom, top), in order of x."""
    return np.array(
        sorted(
            (s[0][0], min(s[0][1], s[1][1]), max(s[0][1], s[1][1]))
            for s in c.lines[2][0].get_segments()
        )
    )


def near(rows: Any) -> Any:
    """``rows`` (tuples of numbers) to compare with ``bars``."""
    return pytest.approx(np.array(rows, dtype=float), rel=1e-9)


def line(ax: Any, label: str) -> tuple[np.ndarray, np.ndarray]:
    (found,) = [x for x in ax.get_lines() if x.get_label() == label]
    return np.asarray(found.get_xdata()), np.asarray(found.get_ydata())


def band_at(ax: Any, starts: str, x: float) -> tuple[float, float]:
    """The shaded band's bottom and top at ``x`` (one of its points)."""
    (band,) = [c for c in ax.collections if c.get_label().startswith(starts)]
    vertices = band.get_paths()[0].vertices
    ys = vertices[vertices[:, 0] == x, 1]
    return float(ys.min()), float(ys.max())


def test_each_group_is_drawn_at_its_optimum_with_its_band_as_the_bar(width_fit: LawFit) -> None:
    ax = plot_law(width_fit).axes[0]
    inside = [(v[0], o) for v, o in width_fit.groups if not o.at_edge]
    assert points(ax, "optimum (bar") == sorted((x, o.lr) for x, o in inside)
    assert bars(container(ax, "optimum (bar")) == near(
        sorted((x, o.low, o.high) for x, o in inside)
    )
    assert all(o.high > o.low for _, o in inside)  # the bars have a length


def test_a_group_at_the_grids_edge_is_hollow(width_fit: LawFit) -> None:
    ax = plot_law(width_fit).axes[0]
    ((values, edge),) = [(v, o) for v, o in width_fit.groups if o.at_edge]
    assert values == (WIDTHS[0],)  # the smallest rung's grid starts at its optimum
    hollow = container(ax, "optimum at the grid's edge").lines[0]
    assert [tuple(xy) for xy in hollow.get_xydata()] == [(WIDTHS[0], edge.lr)]
    assert hollow.get_markerfacecolor() == "none"
    assert container(ax, "optimum (bar").lines[0].get_markerfacecolor() != "none"


@pytest.mark.parametrize("form", ["power", "log-quadratic"])
def test_the_line_is_the_law_and_the_band_its_refits_interval(form: str) -> None:
    law = fit(width_groups(), ["width"], form)
    ax = plot_law(law).axes[0]
    xs, ys = line(ax, "law")
    for values, _ in law.groups:
        predicted = law.predict(*values)
        assert ys[xs == values[0]] == pytest.approx([predicted.value], rel=1e-9)
        assert band_at(ax, "90% interval", values[0]) == pytest.approx(
            (predicted.low, predicted.high), rel=1e-9
        )
    lows, highs = zip(*(band_at(ax, "90% interval", x) for x in xs), strict=True)
    assert np.all(np.array(lows) <= ys) and np.all(ys <= np.array(highs))
    assert np.all(np.array(highs) > np.array(lows))
    assert (xs.min(), xs.max()) == (min(WIDTHS), max(WIDTHS))  # the fitted range


def test_the_line_reaches_the_prediction_which_is_marked_with_both_intervals(
    width_fit: LawFit,
) -> None:
    predicted = width_fit.predict(4096.0)
    ax = plot_law(width_fit, prediction=predicted).axes[0]
    xs, ys = line(ax, "law")
    assert xs.max() == 4096.0 and ys[-1] == pytest.approx(predicted.value, rel=1e-9)
    star = container(ax, "predicted at width 4096")
    assert [tuple(xy) for xy in star.lines[0].get_xydata()] == [(4096.0, predicted.value)]
    assert star.lines[0].get_marker() == "*"
    assert bars(star) == near([(4096.0, predicted.low, predicted.high)])
    assert f"{predicted.value:.3g}" in star.get_label()
    measured = container(ax, "where a measurement there should fall")
    assert bars(measured) == near([(4096.0, predicted.measured_low, predicted.measured_high)])


@pytest.mark.parametrize("broken", [False, True])
def test_the_held_out_group_is_marked_measured_and_predicted_with_the_verdict(
    broken: bool,
) -> None:
    groups = width_groups()
    if broken:  # the law breaks at the largest rung
        groups[(512.0,)] = bowl(3 * width_optimum(512.0))
    check = held_out(groups, ["width"])
    assert check.within is not broken
    others = fit({k: v for k, v in groups.items() if k != (512.0,)}, ["width"])
    ax = plot_law(others, held_out=check).axes[0]
    assert line(ax, "law")[0].max() == 512.0  # the line reaches the held-out group
    square = container(ax, "held out width 512")
    assert [tuple(xy) for xy in square.lines[0].get_xydata()] == [(512.0, check.measured.lr)]
    assert bars(square) == near([(512.0, check.measured.low, check.measured.high)])
    diamond = container(ax, "predicted from the others")
    assert [tuple(xy) for xy in diamond.lines[0].get_xydata()] == [(512.0, check.prediction.value)]
    assert bars(diamond) == near(
        [(512.0, check.prediction.measured_low, check.prediction.measured_high)]
    )
    assert diamond.get_label().endswith("(OUTSIDE)" if broken else "(within)")


def test_the_axes_are_log_log_named_and_titled_with_the_law(width_fit: LawFit) -> None:
    ax = plot_law(width_fit).axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("width", "best learning rate")
    (alpha,), ((low, high),) = width_fit.exponents, width_fit.exponent_intervals
    title = ax.get_title()
    assert f"width^{alpha:.3g}" in title and f"({low:.3g} .. {high:.3g})" in title
    assert title == f"{law_formula(width_fit)}\n{law_intervals(width_fit)}"


def test_the_law_in_words() -> None:
    law = fit(width_groups(), ["width"], "log-quadratic")
    a, (b, c) = math.log(law.coefficient), law.exponents
    assert b < 0 < c  # (so the signs below are written as - then +)
    assert law_formula(law) == (f"ln eta* = {a:.3g} - {-b:.3g} ln width + {c:.3g} (ln width)^2")
    assert law_intervals(law).startswith("90% intervals: b (of ln width) ")
    assert "c (of (ln width)^2)" in law_intervals(law)
    two = fit(two_variable_groups(), ["N", "D"])
    alpha, beta = two.exponents
    assert law_formula(two) == f"eta* = {two.coefficient:.3g} N^{alpha:.3g} D^{beta:.3g}"
    assert "exponent of N" in law_intervals(two) and "exponent of D" in law_intervals(two)
    assert (
        law_formula(two, "batch_size") == f"B* = {two.coefficient:.3g} N^{alpha:.3g} D^{beta:.3g}"
    )
    assert law_formula(law, "batch_size").startswith(f"ln B* = {a:.3g} - ")


def test_a_batch_size_law_is_labelled_as_one(width_fit: LawFit) -> None:
    ax = plot_law(width_fit, quantity="batch_size").axes[0]
    assert ax.get_ylabel() == "best batch size"
    assert ax.get_title().startswith("B* = ") and "eta*" not in ax.get_title()


def test_two_variables_give_a_line_per_value_of_the_other(two_fit: LawFit) -> None:
    ax = plot_law(two_fit).axes[0]
    assert ax.get_xlabel() == "N"
    laws = {x.get_label() for x in ax.get_lines() if x.get_label().startswith("law")}
    assert laws == {"law at D 100000", "law at D 1e+06"}
    for depth in (1e5, 1e6):
        xs, ys = line(ax, f"law at D {depth:g}")
        (drawn,) = [x for x in ax.get_lines() if x.get_label() == f"law at D {depth:g}"]
        at = [(v[0], o) for v, o in two_fit.groups if v[1] == depth]
        for width, _ in at:
            expected = two_fit.predict(width, depth).value
            assert ys[xs == width] == pytest.approx([expected], rel=1e-9)
        # the slice's optima in the slice's colour
        colour = matplotlib.colors.to_rgba(drawn.get_color())
        coloured = [
            tuple(xy)
            for c in ax.containers
            if c.lines[0] is not None
            and matplotlib.colors.to_rgba(c.lines[0].get_color()) == colour
            for xy in c.lines[0].get_xydata()
        ]
        assert sorted(coloured) == sorted((w, o.lr) for w, o in at)
    across = plot_law(two_fit, variable=1).axes[0]
    assert across.get_xlabel() == "D"
    assert {x.get_label() for x in across.get_lines() if x.get_label().startswith("law")} == {
        f"law at N {n:g}" for n in WIDTHS[:4]
    }


def test_a_prediction_at_a_new_value_of_the_other_variable_gets_its_own_line(
    two_fit: LawFit,
) -> None:
    predicted = two_fit.predict(1024.0, 1e7)
    ax = plot_law(two_fit, prediction=predicted).axes[0]
    xs, ys = line(ax, "law at D 1e+07")
    assert xs.max() == 1024.0 and ys[-1] == pytest.approx(predicted.value, rel=1e-9)
    star = container(ax, "predicted at N 1024, D 1e+07")
    assert [tuple(xy) for xy in star.lines[0].get_xydata()] == [(1024.0, predicted.value)]


def test_drawn_on_given_axes_it_returns_their_figure(width_fit: LawFit) -> None:
    fig, (left, right) = pyplot().subplots(1, 2)
    assert plot_law(width_fit, ax=right) is fig
    assert not left.get_lines() and line(right, "law")[0].size > 0
    sub = pyplot().figure().subfigures(1, 2)[1]
    assert plot_law(width_fit, ax=sub.subplots()) is sub.figure


def test_a_variable_out_of_range_is_refused(width_fit: LawFit) -> None:
    with pytest.raises(LrkitValueError, match="variable"):
        plot_law(width_fit, variable=1)


def test_the_figures_save_as_png_and_svg(width_fit: LawFit, tmp_path: Path) -> None:
    check = held_out(width_groups(), ["width"])
    save(plot_law(width_fit, held_out=check), tmp_path / "law.png")
    save(plot_held_out([("width", check)]), tmp_path / "held.svg")
    assert (tmp_path / "law.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "held.svg").read_bytes()


def checks() -> list[tuple[str, HeldOutCheck]]:
    lawful = held_out(width_groups(), ["width"])
    shifted: Optimum = replace(
        lawful.measured,
        lr=3 * lawful.measured.lr,
        low=3 * lawful.measured.low,
        high=3 * lawful.measured.high,
    )
    return [("width", lawful), ("shifted", replace(lawful, measured=shifted))]


def test_the_held_out_plot_puts_each_check_about_y_equals_x() -> None:
    drawn = checks()
    ax = plot_held_out(drawn).axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    xs, ys = line(ax, "predicted = measured")
    assert np.array_equal(xs, ys)
    (band,) = [c for c in ax.collections if c.get_label() == "within a factor of sqrt(2)"]
    vertices = band.get_paths()[0].vertices
    for x in xs:
        at = vertices[vertices[:, 0] == x, 1]
        assert (at.min(), at.max()) == pytest.approx((x / math.sqrt(2), x * math.sqrt(2)))
    for title, check in drawn:
        point = container(ax, f"{title}: ")
        measured, predicted = check.measured, check.prediction
        assert [tuple(xy) for xy in point.lines[0].get_xydata()] == [(measured.lr, predicted.value)]
        # vertical bar: where a measurement should fall; horizontal: the measured band
        horizontal, vertical = point.lines[2]
        ((x, y0), (_, y1)), ((x0, y), (x1, _)) = (
            vertical.get_segments()[0],
            horizontal.get_segments()[0],
        )
        assert (x, y0, y1) == pytest.approx(
            (measured.lr, predicted.measured_low, predicted.measured_high)
        )
        assert (y, x0, x1) == pytest.approx((predicted.value, measured.low, measured.high))
        assert point.get_label().endswith("(within)" if check.within else "(OUTSIDE)")
        assert xs.min() < min(measured.low, predicted.measured_low)
        assert xs.max() > max(measured.high, predicted.measured_high)
    assert [c.within for _, c in drawn] == [True, False]


def test_the_held_out_plot_needs_a_check() -> None:
    with pytest.raises(LrkitValueError, match="at least one held-out check"):
        plot_held_out([])
