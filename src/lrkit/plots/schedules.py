"""The schedule figure: learning rate against iteration, one curve per schedule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lrkit.plots.figure import pyplot, save
from lrkit.schedules.curve import ScheduleCurve


def plot_schedules(
    curves: Sequence[ScheduleCurve],
    path: Path,
    *,
    labels: Sequence[str] | None = None,
    log_y: bool = False,
    title: str | None = None,
) -> None:
    """Draw each curve's learning rate against iteration and save the figure to ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for curve, label in zip(curves, labels or [c.name for c in curves], strict=True):
        ax.plot(curve.iterations, curve.lrs, label=label, linewidth=1.6, drawstyle="steps-post")
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if len(curves) > 1:
        ax.legend(frameon=False, fontsize="small")
    ax.set_title(title or ("learning-rate schedules" if len(curves) > 1 else curves[0].name))
    save(fig, path)
