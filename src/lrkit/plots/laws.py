"""The figures of ``lrkit laws``: a fitted law against one of its variables, and held-out
checks as predicted against measured optima.

``plot_law``: each group's optimum (log-log) with its band of near-best runs as the bar,
hollow where the band touches the grid's edge (the optimum may lie beyond it); the law as a
line over the fitted range, extended to the prediction and the held-out group, with the
central ``level`` of the bootstrap refits' predictions shaded (the interval
``LawFit.predict`` gives, at every point of the line). A law in several variables is drawn
against one, a line per distinct value of the others. ``plot_held_out``: each check's
prediction from the other groups against its measured optimum, about the line y = x and a
band of a factor sqrt(2) either way (half an octave: about where one grid point of a few an
octave puts an optimum).

Both return the figure; ``lrkit.plots.figure.save`` writes it (PNG, SVG or PDF by suffix).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.laws.fit import HeldOutCheck, LawFit, Prediction
from lrkit.laws.optimum import Optimum
from lrkit.laws.words import law_formula, law_intervals, law_values, quantity_words
from lrkit.plots.figure import pyplot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

POINTS = 200
"""Points of a law's line (besides the groups', the prediction's and the held-out group's
own values, which are always on it)."""
PREDICTION = "crimson"
HELD_OUT = "darkorange"


def plot_law(
    fit: LawFit,
    *,
    variable: int = 0,
    prediction: Prediction | None = None,
    held_out: HeldOutCheck | None = None,
    ax: Axes | None = None,
    quantity: str = "lr",
) -> Figure:
    """Draw ``fit`` (a law of ``quantity``: ``"lr"`` or ``"batch_size"``) against its
    ``variable``-th variable (on ``ax``, else a new figure) with ``prediction`` and
    ``held_out`` marked, as the module's docstring says; returns the figure."""
    if not 0 <= variable < len(fit.variables):
        raise InvalidParameterError(
            "variable", f"an index of the law's variables 0 .. {len(fit.variables) - 1}", variable
        )
    fig, ax = _figure_and_axes(ax, (6.6, 4.8))
    marked = [p.values for p in (prediction, held_out) if p is not None]
    slices = sorted({_rest(v, variable) for v in [*(v for v, _ in fit.groups), *marked]})
    shown = [v[variable] for v, _ in fit.groups] + [v[variable] for v in marked]
    xs = np.union1d(np.geomspace(min(shown), max(shown), POINTS), shown)
    labelled: set[str] = set()
    for colour, fixed in zip(_colours(len(slices)), slices, strict=True):
        _draw_law(ax, fit, variable, fixed, xs, colour, alone=len(slices) == 1)
        _draw_optima(ax, fit, variable, fixed, colour, labelled)
    if prediction is not None:
        _mark_prediction(ax, fit, variable, prediction)
    if held_out is not None:
        _mark_held_out(ax, fit, variable, held_out)
    title = f"{law_formula(fit, quantity)}\n{law_intervals(fit)}"
    _log_axes(ax, fit.variables[variable], quantity_words(quantity), title)
    ax.legend(fontsize="x-small", loc="best")
    return fig


def plot_held_out(checks: Sequence[tuple[str, HeldOutCheck]], *, ax: Axes | None = None) -> Figure:
    """Each check's prediction from the other groups (bar: where its measurement should
    fall) against its measured optimum (bar: its band), labelled, about y = x and a band of
    a factor sqrt(2) either way; returns the figure."""
    if not checks:
        raise LrkitValueError("plot_held_out needs at least one held-out check")
    fig, ax = _figure_and_axes(ax, (5.6, 5.2))
    ends: list[float] = []
    for label, check in checks:
        measured, predicted = check.measured, check.prediction
        verdict = "within" if check.within else "OUTSIDE"
        ax.errorbar(
            [measured.lr],
            [predicted.value],
            xerr=_bar([measured]),
            yerr=_bar_to(predicted.value, predicted.measured_low, predicted.measured_high),
            fmt="o",
            markersize=6,
            capsize=3,
            zorder=3,
            label=f"{label}: predicted {predicted.value:.3g}, measured {measured.lr:.3g} "
            f"({verdict})",
        )
        ends += [measured.low, measured.high, predicted.measured_low, predicted.measured_high]
    low, high = min(ends) / 1.5, max(ends) * 1.5
    diagonal = np.geomspace(low, high, 50)
    ax.plot(diagonal, diagonal, color="black", linewidth=1.0, label="predicted = measured")
    ax.fill_between(
        diagonal,
        diagonal / math.sqrt(2),
        diagonal * math.sqrt(2),
        color="grey",
        alpha=0.15,
        linewidth=0,
        label="within a factor of sqrt(2)",
    )
    _log_axes(
        ax,
        "measured optimum, lr or batch size (bar: band of near-best runs)",
        "predicted from the other groups (bar: where a measurement should fall)",
        "held-out checks: the largest group predicted from the others",
    )
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.legend(fontsize="x-small", loc="upper left")
    return fig


def law_curve(fit: LawFit, logs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The law at rows of ln values of its variables, and the central ``level`` of the
    refits' predictions there (low, high): ``LawFit.predict``'s value and interval, at many
    points at once."""
    design = fit.law_form.design(logs)
    law = design @ np.array([math.log(fit.coefficient), *fit.exponents])
    refits = design @ np.array(fit.draws).T
    tail = (1.0 - fit.level) / 2.0
    low, high = np.quantile(refits, [tail, 1.0 - tail], axis=1)
    return np.exp(law), np.exp(low), np.exp(high)


def _rest(values: Sequence[float], variable: int) -> tuple[float, ...]:
    """The values of every variable but the ``variable``-th: a line's slice of the law."""
    return tuple(v for i, v in enumerate(values) if i != variable)


def _colours(slices: int) -> Sequence[Any]:
    """One colour a line: matplotlib's first for one, else spread over viridis."""
    if slices == 1:
        return ["#1f77b4"]
    return list(pyplot().get_cmap("viridis")(np.linspace(0.05, 0.85, slices)))


def _draw_law(
    ax: Any,
    fit: LawFit,
    variable: int,
    fixed: tuple[float, ...],
    xs: np.ndarray,
    colour: Any,
    *,
    alone: bool,
) -> None:
    """The law along ``xs`` at the other variables' values ``fixed``, and the central
    ``level`` of its refits shaded (named in the legend where the line is ``alone``)."""
    others = [i for i in range(len(fit.variables)) if i != variable]
    where = ", ".join(f"{fit.variables[i]} {v:g}" for i, v in zip(others, fixed, strict=True))
    logs = np.empty((len(xs), len(fit.variables)))
    logs[:, variable] = np.log(xs)
    for i, v in zip(others, fixed, strict=True):
        logs[:, i] = math.log(v)
    line, low, high = law_curve(fit, logs)
    ax.plot(xs, line, color=colour, linewidth=1.6, label=f"law at {where}" if where else "law")
    band = f"{fit.level:.0%} interval of the refits" if alone else "_band"
    ax.fill_between(
        xs, low, high, color=colour, alpha=0.18 if alone else 0.1, linewidth=0, label=band
    )


def _draw_optima(
    ax: Any, fit: LawFit, variable: int, fixed: tuple[float, ...], colour: Any, labelled: set[str]
) -> None:
    """The optima of the groups at ``fixed`` (bar: each one's band), hollow at the grid's
    edge; each kind named in the legend once (``labelled`` holds those named)."""
    for edge in (False, True):
        optima = [
            (v[variable], o)
            for v, o in fit.groups
            if _rest(v, variable) == fixed and o.at_edge is edge
        ]
        if not optima:
            continue
        label = "optimum at the grid's edge" if edge else "optimum (bar: band of near-best)"
        ax.errorbar(
            [x for x, _ in optima],
            [o.lr for _, o in optima],
            yerr=_bar([o for _, o in optima]),
            fmt="o",
            color=colour,
            markerfacecolor="none" if edge else colour,
            markersize=6,
            capsize=3,
            zorder=3,
            # a leading underscore hides a label from the legend
            label=label if label not in labelled else f"_{label}",
        )
        labelled.add(label)


def _log_axes(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """Both axes logarithmic, labelled and gridded, and the title."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3, which="both")


def _figure_and_axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and the figure that holds it (a subfigure's too), or a new figure's one axes."""
    if ax is None:
        fig, ax = pyplot().subplots(figsize=size)
        return fig, ax
    from matplotlib.figure import Figure

    parent = ax.figure
    return (parent if isinstance(parent, Figure) else parent.figure), ax


def _bar(optima: Sequence[Optimum]) -> list[list[float]]:
    """Error bars from each optimum down to its band's low end and up to its high end."""
    return [[o.lr - o.low for o in optima], [o.high - o.lr for o in optima]]


def _bar_to(value: float, low: float, high: float) -> list[list[float]]:
    """An error bar from ``value`` down to ``low`` and up to ``high``."""
    return [[value - low], [high - value]]


def _mark_prediction(ax: Any, fit: LawFit, variable: int, prediction: Prediction) -> None:
    """The prediction as a star with its interval (thick bar) and where a measurement there
    should fall (thin, dotted bar)."""
    x, value = prediction.values[variable], prediction.value
    measurement = (prediction.measured_low, prediction.measured_high)
    where = "where a measurement there should fall"
    thin = {"elinewidth": 1.0, "linestyle": ":", "capsize": 7, "alpha": 0.6}
    _point(ax, (x, value), measurement, where, fmt="none", ecolor=PREDICTION, **thin)
    label = (
        f"predicted at {law_values(fit, prediction.values)}: {value:.3g} "
        f"({prediction.level:.0%} interval {prediction.low:.3g} .. {prediction.high:.3g})"
    )
    star = {"markersize": 13, "elinewidth": 2.2, "capsize": 4, "zorder": 4}
    _point(
        ax, (x, value), (prediction.low, prediction.high), label, fmt="*", color=PREDICTION, **star
    )


def _mark_held_out(ax: Any, fit: LawFit, variable: int, held_out: HeldOutCheck) -> None:
    """The held-out group's measured optimum (open square, bar: its band) and its
    prediction from the other groups (diamond, bar: where its measurement should fall)."""
    x, measured, predicted = held_out.values[variable], held_out.measured, held_out.prediction
    label = f"held out {law_values(fit, held_out.values)}: measured {measured.lr:.3g}"
    square = {"markerfacecolor": "none", "markersize": 10, "elinewidth": 2.0, "zorder": 4}
    _point(
        ax, (x, measured.lr), (measured.low, measured.high), label, fmt="s", color="black", **square
    )
    verdict = "within" if held_out.within else "OUTSIDE"
    label = f"predicted from the others: {predicted.value:.3g} ({verdict})"
    diamond = {"markersize": 6, "capsize": 5, "zorder": 4}
    bar = (predicted.measured_low, predicted.measured_high)
    _point(ax, (x, predicted.value), bar, label, fmt="D", color=HELD_OUT, **diamond)


def _point(
    ax: Any, at: tuple[float, float], bar: tuple[float, float], label: str, **style: Any
) -> None:
    """A marker at ``at`` (x, y) with a vertical bar from ``bar[0]`` up to ``bar[1]``."""
    (x, y), (low, high) = at, bar
    ax.errorbar([x], [y], yerr=_bar_to(y, low, high), label=label, **style)
