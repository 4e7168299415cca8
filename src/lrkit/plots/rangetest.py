"""The range-test figure: loss against log10(lr), one panel per round, suggestions marked."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from lrkit.plots.figure import pyplot, save
from lrkit.rangetest.result import RangeTestResult, RoundResult

_COLOURS = {
    "turning_point": "#d62728",
    "valley": "#2ca02c",
    "steepest": "#9467bd",
    "minimum": "#8c564b",
}


def plot_range_test(result: RangeTestResult, path: Path) -> None:
    """Draw every round of ``result`` and save the figure to ``path`` (PNG, SVG or PDF)."""
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
    save(fig, path)


def _draw_round(ax: Any, round_result: RoundResult, index: int, result: RangeTestResult) -> None:
    record = round_result.record
    points = record.points
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
    holds = [h for h in record.holds if h.complete]
    if any(h.iterations > 1 for h in holds):
        ax.plot(
            np.log10([h.lr for h in holds]),
            [h.mean_loss for h in holds],
            "o",
            color="#ff7f0e",
            markersize=3,
            label="mean over hold",
        )
    evaluated = [h for h in holds if h.eval_loss is not None]
    if evaluated:
        ax.plot(
            np.log10([h.lr for h in evaluated]),
            [h.eval_loss for h in evaluated],
            "-s",
            color="black",
            markersize=3,
            linewidth=1.0,
            label="eval loss at end of hold",
        )
    marks = (
        round_result.suggestions
        if index == 0
        else {"turning_point": round_result.suggestions["turning_point"]}
    )
    for name, lr in marks.items():
        if lr is None or lr <= 0:
            continue
        style = "-" if name == result.method else "--"
        ax.axvline(
            math.log10(lr),
            color=_COLOURS.get(name, "0.3"),
            linestyle=style,
            linewidth=1.2,
            label=f"{name}: {lr:.3g}",
        )
    if round_result.turning_point is not None:
        ax.axvline(
            math.log10(round_result.turning_point.lr),
            color=_COLOURS["turning_point"],
            linestyle=":",
            linewidth=1.0,
            label=f"turn: {round_result.turning_point.lr:.3g}",
        )
    if record.diverged_at is not None:
        ax.axvline(
            math.log10(record.diverged_at),
            color="black",
            linestyle=":",
            linewidth=0.8,
            label=f"diverged: {record.diverged_at:.3g}",
        )
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
