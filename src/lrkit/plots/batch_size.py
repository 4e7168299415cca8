"""The batch-size-schedule figure (``lrkit reproduce --bs-schedule``): validation accuracy of
a learning-rate decay and of the matching batch-size increase, against epochs (examples
seen) and against parameter updates, with the milestones marked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lrkit.plots.figure import pyplot, save
from lrkit.training.records import CurvePoint


@dataclass(frozen=True)
class ArmCurve:
    """One arm as drawn: its legend label (the number of updates is added) and its checks."""

    label: str
    points: Sequence[CurvePoint]


def _milestone_iterations(points: Sequence[CurvePoint], milestones: Sequence[int]) -> list[float]:
    """The update at which an arm reached each milestone epoch (interpolated between checks;
    the checks fall on whole epochs, so exact there)."""
    epochs = np.array([p.epoch for p in points], dtype=float)
    iterations = np.array([p.iteration for p in points], dtype=float)
    return [float(np.interp(m, epochs, iterations)) for m in milestones if m <= epochs[-1] + 1e-9]


def plot_batch_size_schedule(
    arms: Sequence[ArmCurve], milestones: Sequence[int], path: Path, title: str = ""
) -> None:
    """Two panels: validation accuracy against epochs and against parameter updates, a line
    per arm (legend: the updates it took), the milestones as dotted lines (epochs) and as
    markers on each arm's curve (updates)."""
    plt = pyplot()
    fig, (by_epoch, by_update) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    later: list[float] = []
    top = 0.0
    for index, arm in enumerate(arms):
        if not arm.points:
            continue
        epochs = np.array([p.epoch for p in arm.points], dtype=float)
        iterations = np.array([p.iteration for p in arm.points], dtype=float)
        accuracy = np.array([p.val_accuracy for p in arm.points], dtype=float)
        # The accuracy axis starts just below the lowest check from the first epoch on: the
        # climb from chance would squash the differences the figure is for.
        shown = accuracy[(epochs >= 1.0 - 1e-9) & np.isfinite(accuracy)]
        if len(shown):
            later.append(float(np.min(shown)))
            top = max(top, float(np.max(shown)))
        label = f"{arm.label} ({int(iterations[-1]):,} updates)"
        # The first arm wide and pale beneath the others: where the curves coincide (before
        # the first milestone they are the same run), both stay visible.
        style = {"linewidth": 3.2, "alpha": 0.45} if index == 0 else {"linewidth": 1.3}
        (line,) = by_epoch.plot(epochs, accuracy, label=label, **style)
        by_update.plot(iterations, accuracy, color=line.get_color(), label=label, **style)
        at = _milestone_iterations(arm.points, milestones)
        if at:
            by_update.plot(
                at,
                np.interp(at, iterations, accuracy),
                linestyle="none",
                marker="o",
                markersize=5,
                markerfacecolor="white",
                color=line.get_color(),
            )
    for m in milestones:
        by_epoch.axvline(m, color="0.5", linestyle=":", linewidth=1.0)
    steps = ", ".join(str(m) for m in milestones)
    word = "epoch" if len(milestones) == 1 else "epochs"
    by_epoch.plot([], [], color="0.5", linestyle=":", label=f"milestones ({word} {steps})")
    by_epoch.plot(
        [],
        [],
        linestyle="none",
        marker="o",
        markerfacecolor="white",
        color="0.3",
        label="an arm at a milestone (right)",
    )
    by_epoch.set_xlabel("epoch (the same examples seen by both arms)")
    by_update.set_xlabel("parameter updates")
    by_epoch.set_title("against examples seen", fontsize="medium")
    by_update.set_title("against parameter updates", fontsize="medium")
    ax: Any
    for ax in (by_epoch, by_update):
        ax.set_ylabel("validation accuracy")
        ax.grid(True, alpha=0.3)
        if later:
            ax.set_ylim(bottom=max(0.0, min(later) - 0.01), top=min(1.0, top + 0.01))
    handles, labels = by_epoch.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize="small", frameon=False)
    fig.suptitle(title or "decay the learning rate, or increase the batch size", fontsize="medium")
    fig.tight_layout(rect=(0.0, 0.1, 1.0, 1.0))
    save(fig, path)
