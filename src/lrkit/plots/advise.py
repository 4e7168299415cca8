"""The figure of ``lrkit advise``: the range test's curve with the candidates marked (left),
and every candidate's validation curve over the race (right), each ending where it was left
behind, the winner drawn bold; where the advised lr is the winner scaled to the budget
(``advise.horizon``), a dashed line marks it on the left."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrkit.advise.result import Advice
from lrkit.plots.figure import pyplot, save


def plot_advice(advice: Advice, path: Path) -> None:
    """Draw ``advice`` and save the figure to ``path`` (PNG, SVG or PDF)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.8, 4.6))
    first = advice.range_test.rounds[0]
    lrs, losses = np.array(first.curve_lrs), np.array(first.curve_losses)
    finite = np.isfinite(losses)
    left.plot(lrs[finite], losses[finite], color="#1f77b4", linewidth=1.2)
    left.set_xscale("log")
    left.set_xlabel("learning rate")
    left.set_ylabel(f"{first.curve} loss")
    left.set_title("range test: the candidates", fontsize="medium")
    colours = plt.get_cmap("viridis")(np.linspace(0.05, 0.9, len(advice.candidates)))
    for colour, candidate in zip(colours, advice.candidates, strict=True):
        chosen = candidate.lr == advice.raced_lr
        left.axvline(candidate.lr, color=colour, linewidth=2.2 if chosen else 0.9, alpha=0.9)
        epochs = [e for e, _ in candidate.curve]
        values = [v for _, v in candidate.curve]
        label = f"lr {candidate.lr:.3g} ({', '.join(candidate.sources)})"
        if chosen:
            label += ": advised" if advice.lr == advice.raced_lr else ": the race's winner"
        right.plot(
            epochs,
            values,
            color=colour,
            linewidth=2.4 if chosen else 1.1,
            marker="o" if len(epochs) < 30 else None,
            markersize=2.5,
            label=label,
        )
    if advice.lr != advice.raced_lr:
        left.axvline(
            advice.lr,
            color="black",
            linestyle="--",
            linewidth=1.6,
            label=f"advised {advice.lr:.3g} = winner x {advice.horizon_factor:.2g}",
        )
        left.legend(fontsize="x-small", loc="best")
    right.set_xlabel("epoch")
    right.set_ylabel(f"validation {advice.metric}")
    right.set_title("the race: each candidate until it was left behind", fontsize="medium")
    right.legend(fontsize="x-small", loc="best")
    fig.suptitle(
        f"lrkit advise: {advice.model}, batch size {advice.batch_size}, {advice.optimizer}, "
        f"{advice.epochs:g} epochs; advised lr {advice.lr:.3g}",
        fontsize="medium",
    )
    fig.tight_layout()
    save(fig, path)
