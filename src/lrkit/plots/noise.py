"""The figure of ``lrkit noise``: B_simple over training, with its error bars, the smoothed
curve, the training batch size and the critical batch size read at the end."""

from __future__ import annotations

import math
from pathlib import Path

from lrkit.noise.tracking import NoiseRun
from lrkit.plots.figure import pyplot, save


def plot_noise_scale(result: NoiseRun, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    shown = [p for p in result.points if math.isfinite(p.b_simple) and p.b_simple > 0]
    ax.errorbar(
        [p.epoch for p in shown],
        [p.b_simple for p in shown],
        yerr=[p.b_simple_stderr if math.isfinite(p.b_simple_stderr) else 0.0 for p in shown],
        fmt="o",
        markersize=3,
        color="#1f77b4",
        capsize=2,
        label=f"B_simple ({result.estimator}, ± 1 s.e.)",
    )
    smooth = [
        p for p in result.points if math.isfinite(p.b_simple_smoothed) and p.b_simple_smoothed > 0
    ]
    ax.plot(
        [p.epoch for p in smooth],
        [p.b_simple_smoothed for p in smooth],
        color="#ff7f0e",
        label="smoothed (moving averages of tr(Sigma) and |G|^2)",
    )
    ax.axhline(
        result.batch_size,
        color="0.4",
        linestyle="--",
        linewidth=1.0,
        label=f"training batch size {result.batch_size}",
    )
    critical = result.critical_batch_size
    if math.isfinite(critical) and critical > 0:
        ax.axhline(
            critical,
            color="#d62728",
            linestyle=":",
            linewidth=1.2,
            label=f"critical batch size ~ {critical:.3g}",
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("B_simple = tr(Sigma) / |G|^2")
    ax.set_title(
        f"gradient noise scale: {result.model}, batch {result.batch_size}, lr {result.lr:g}",
        fontsize="medium",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", frameon=False, loc="upper left")
    fig.tight_layout()
    save(fig, path)
