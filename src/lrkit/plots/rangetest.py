"""The range-test figure: loss against log10(lr), one panel per round, suggestions marked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lrkit.plots.figure import pyplot, save
from lrkit.rangetest.core import Hold
from lrkit.rangetest.result import RangeTestResult, RoundResult

_COLOURS = {
    "turning_point": "#d62728",
    "valley": "#2ca02c",
    "steepest": "#9467bd",
    "minimum": "#8c564b",
}


def plot_range_test(result: RangeTestResult, path: Path) -> None:
    """Draw every round of ``result`` and save the figure to ``path`` (PNG, SVG or PDF)."""
    save(range_test_figure(result), path)


def range_test_figure(result: RangeTestResult) -> Any:
    """The matplotlib figure of every round of ``result`` (for a logger that takes figures);
    the caller closes it."""
    plt = pyplot()
    n = len(result.rounds)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 4.4), squeeze=False)
    for index, (ax, round_result) in enumerate(zip(axes[0], result.rounds, strict=True)):
        _draw_round(ax, round_result, index, result)
    title = f"learning-rate range test: {result.model}, batch size {result.batch_size}"
    if result.suggested_lr is not None:
        title += f"; suggested lr {result.suggested_lr:.3g} ({result.method})"
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return fig


def _draw_round(ax: Any, round_result: RoundResult, index: int, result: RangeTestResult) -> None:
    """One round's panel: its curves, the holds' losses, the lrs marked, then its view."""
    holds = [h for h in round_result.record.holds if h.complete]
    evaluated = [h for h in holds if h.eval_loss is not None]
    _draw_curves(ax, round_result)
    _draw_holds(ax, holds, evaluated)
    _mark_lrs(ax, round_result, index, result.method)
    _frame(ax, round_result, evaluated, index)


def _draw_curves(ax: Any, round_result: RoundResult) -> None:
    """The batch loss and its smoothed curve; with repeats, the others faintly and their
    mean."""
    points = round_result.record.points
    x = np.log10([p.lr for p in points])
    losses = np.array([p.loss for p in points])
    finite = np.isfinite(losses)
    ax.plot(x[finite], losses[finite], color="0.75", linewidth=0.6, label="batch loss")
    ax.plot(
        x, [p.smoothed_loss for p in points], color="#1f77b4", linewidth=1.2, label="smoothed loss"
    )
    for other in round_result.repeats:  # the other repeats, faintly
        ax.plot(
            np.log10([p.lr for p in other.points]),
            [p.smoothed_loss for p in other.points],
            color="#1f77b4",
            alpha=0.35,
            linewidth=0.8,
        )
    if round_result.repeats:
        curve = np.array(round_result.curve_losses)
        read = np.isfinite(curve)
        ax.plot(
            np.log10(np.array(round_result.curve_lrs)[read]),
            curve[read],
            color="#2ca02c",
            linewidth=1.6,
            label=f"mean of {len(round_result.records)} repeats ({round_result.curve})",
        )


def _draw_holds(ax: Any, holds: list[Hold], evaluated: list[Hold]) -> None:
    """Each hold's mean loss (where a hold is longer than one iteration) and its evaluation
    loss at its end (where it was evaluated), at its lr."""
    if any(h.iterations > 1 for h in holds):
        means = [h.mean_loss for h in holds]
        _plot_at_holds(ax, holds, means, "o", color="#ff7f0e", label="mean over hold")
    if evaluated:
        losses = [h.eval_loss for h in evaluated]
        _plot_at_holds(
            ax,
            evaluated,
            losses,
            "-s",
            color="black",
            linewidth=1.0,
            label="eval loss at end of hold",
        )


def _plot_at_holds(
    ax: Any, holds: list[Hold], values: Sequence[float | None], fmt: str, **style: Any
) -> None:
    """``values``, one a hold, against log10 of the holds' lrs, in small markers."""
    ax.plot(np.log10([h.lr for h in holds]), values, fmt, markersize=3, **style)


def _mark_lrs(ax: Any, round_result: RoundResult, index: int, method: str) -> None:
    """Vertical lines at the suggestions (every rule's in the first round, the turning
    point's in the others; solid: the method chosen), at the turn and where the loss
    diverged."""
    suggestions = round_result.suggestions
    marks = suggestions if index == 0 else {"turning_point": suggestions["turning_point"]}
    for name, lr in marks.items():
        if lr is None or lr <= 0:
            continue
        style = "-" if name == method else "--"
        _mark_lr(ax, lr, f"{name}: {lr:.3g}", _COLOURS.get(name, "0.3"), style, 1.2)
    turn = round_result.turning_point
    if turn is not None:
        _mark_lr(ax, turn.lr, f"turn: {turn.lr:.3g}", _COLOURS["turning_point"], ":", 1.0)
    diverged = round_result.record.diverged_at
    if diverged is not None:
        _mark_lr(ax, diverged, f"diverged: {diverged:.3g}", "black", ":", 0.8)


def _mark_lr(ax: Any, lr: float, label: str, colour: str, style: str, width: float) -> None:
    """A vertical line at ``lr`` on the panel's log10 axis."""
    ax.axvline(math.log10(lr), color=colour, linestyle=style, linewidth=width, label=label)


def _frame(ax: Any, round_result: RoundResult, evaluated: list[Hold], index: int) -> None:
    """The panel's view (the descent and the turn; a narrowed round's fine steps), labels,
    title, grid and legend."""
    record = round_result.record
    points = record.points
    # Show the descent and the turn; the divergent tail would flatten everything else.
    shown = [p.smoothed_loss for p in points if math.isfinite(p.smoothed_loss)]
    shown += [h.eval_loss for h in evaluated if h.eval_loss is not None]
    if shown:
        low, start = min(shown), shown[0]
        ax.set_ylim(bottom=low * 0.9 if low > 0 else None, top=max(start, low) * 1.5)
    if record.focus is not None and points:
        # A narrowed round: show its fine steps and a little of the lead-in before them.
        ax.set_xlim(math.log10(record.focus) - 0.1, math.log10(max(p.lr for p in points)) + 0.03)
    ax.set_xlabel("log10(learning rate)")
    ax.set_ylabel("loss")
    ax.set_title(f"round {index + 1}: {_short(record.program)}", fontsize="small")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small", frameon=False)


def _short(program: str, limit: int = 60) -> str:
    return program if len(program) <= limit else program[: limit - 3] + "..."
