"""The sweep's figures (the textbook's): validation accuracy against iteration, one line per
lr and a panel per batch size; against epoch, one line per batch size at a fixed lr; a
heatmap of batch size x lr; and the fit of the best lr against batch size. Repeats are drawn
as their mean with a band from the lowest to the highest. Failed trials (training raised) are
left out, as they are from the ranking: their curves stop where the error struck, not where
the learning rate took them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lrkit.plots.figure import pyplot, save
from lrkit.scaling import PowerLawFit
from lrkit.sweep.analysis import BestLr, scored_trials, scores
from lrkit.sweep.store import StoredTrial

FIGURES = ("accuracy-vs-iteration.png", "heatmap.png", "accuracy-vs-epoch.png", "best-lr-fit.png")
"""The files :func:`write_sweep_figures` may write (after its prefix): the third where the
trials share an lr, the fourth where the best lrs were fitted."""


def _curves(
    trials: Sequence[StoredTrial], x: str
) -> dict[tuple[int, float], tuple[Any, Any, Any, Any]]:
    """(batch size, lr) -> (x, mean, low, high) of validation accuracy over repeats, on the
    checks all repeats reached."""
    groups: dict[tuple[int, float], list[StoredTrial]] = defaultdict(list)
    for trial in scored_trials(trials):
        groups[(trial.batch_size, trial.lr)].append(trial)
    result = {}
    for key, group in groups.items():
        length = min(len(t.points) for t in group)
        if length == 0:
            continue
        acc = np.array([[p.val_accuracy for p in t.points[:length]] for t in group], dtype=float)
        xs = np.array([getattr(p, x) for p in group[0].points[:length]], dtype=float)
        result[key] = (xs, np.nanmean(acc, axis=0), np.nanmin(acc, axis=0), np.nanmax(acc, axis=0))
    return result


def _zoom(ax: Any, means: list[Any]) -> None:
    """Start the accuracy axis just below the lowest check after the first: the jump from
    chance at iteration 0 would squash the differences the figure is for."""
    later = [float(np.nanmin(m[1:])) for m in means if len(m) > 1 and np.any(np.isfinite(m[1:]))]
    if later:
        ax.set_ylim(bottom=max(0.0, min(later) - 0.02), top=1.0)


def _line(ax: Any, xs: Any, mean: Any, low: Any, high: Any, label: str) -> None:
    (line,) = ax.plot(xs, mean, linewidth=1.4, label=label)
    if np.any(high > low):
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.18, linewidth=0)


def _nothing_to_draw(path: Path, title: str) -> None:
    """A figure that says so, where every trial failed: the file a caller asked for exists,
    and tells what happened instead of showing empty axes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 2.0))
    ax.text(0.5, 0.5, "no trial to draw: every one failed", ha="center", va="center")
    ax.set_axis_off()
    ax.set_title(title, fontsize="medium")
    save(fig, path)


def plot_accuracy_vs_iteration(trials: Sequence[StoredTrial], path: Path, title: str = "") -> None:
    """A panel per batch size, a line per lr: validation accuracy against iteration."""
    curves = _curves(trials, "iteration")
    sizes = sorted({b for b, _ in curves})
    if not sizes:
        _nothing_to_draw(path, title or "validation accuracy against iteration")
        return
    plt = pyplot()
    columns = min(len(sizes), 3)
    rows = math.ceil(len(sizes) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False)
    for ax, size in zip(axes.flat, sizes, strict=False):
        shown = []
        for (b, lr), (xs, mean, low, high) in sorted(curves.items()):
            if b == size:
                _line(ax, xs, mean, low, high, f"lr {lr:g}")
                shown.append(mean)
        _zoom(ax, shown)
        ax.set_title(f"batch size {size}", fontsize="medium")
        ax.set_xlabel("iteration")
        ax.set_ylabel("validation accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", frameon=False, loc="lower right")
    for ax in list(axes.flat)[len(sizes) :]:
        ax.set_visible(False)
    fig.suptitle(title or "validation accuracy against iteration", fontsize="medium")
    fig.tight_layout()
    save(fig, path)


def shared_lr(trials: Sequence[StoredTrial]) -> float | None:
    """The lr tried at the most batch sizes (at least two), for the figure against epoch."""
    sizes: dict[float, set[int]] = defaultdict(set)
    for trial in scored_trials(trials):
        sizes[trial.lr].add(trial.batch_size)
    best = max(sizes.items(), key=lambda item: (len(item[1]), -item[0]), default=None)
    return best[0] if best is not None and len(best[1]) > 1 else None


def plot_accuracy_vs_epoch(trials: Sequence[StoredTrial], lr: float, path: Path) -> None:
    """A line per batch size at learning rate ``lr``: validation accuracy against epoch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    shown = []
    for (b, trial_lr), (xs, mean, low, high) in sorted(_curves(trials, "epoch").items()):
        if trial_lr == lr:
            _line(ax, xs, mean, low, high, f"batch {b}")
            shown.append(mean)
    _zoom(ax, shown)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"validation accuracy against epoch at lr {lr:g}", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", frameon=False, loc="lower right")
    fig.tight_layout()
    save(fig, path)


def plot_heatmap(trials: Sequence[StoredTrial], path: Path, metric: str = "final") -> None:
    """Mean validation accuracy over batch size x lr (blank where not run)."""
    table = scores(trials, metric)
    sizes = sorted(table)
    if not sizes:
        _nothing_to_draw(path, f"{metric} validation accuracy")
        return
    plt = pyplot()
    lrs = sorted({s.lr for ranked in table.values() for s in ranked})
    grid = np.full((len(sizes), len(lrs)), np.nan)
    for i, size in enumerate(sizes):
        for score in table[size]:
            grid[i, lrs.index(score.lr)] = score.mean
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(lrs), 1.2 + 0.6 * len(sizes)))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    for i in range(len(sizes)):
        for j in range(len(lrs)):
            if not math.isnan(grid[i, j]):
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.3f}",
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if grid[i, j] < np.nanmean(grid) else "black",
                )
    ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_yticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("batch size")
    ax.set_title(f"{metric} validation accuracy (mean over repeats)", fontsize="medium")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    save(fig, path)


def plot_fit(best: dict[int, BestLr], fit: PowerLawFit, path: Path) -> None:
    """The best lr against batch size (log-log) with the fitted power law and the linear and
    square-root rules through the smallest batch size's best lr."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    sizes = np.array(sorted(best), dtype=float)
    lrs = np.array([best[int(b)].lr for b in sizes])
    ax.plot(sizes, lrs, "o", color="black", label="best lr (grid)")
    span = np.geomspace(sizes.min(), sizes.max(), 50)
    stderr = "" if fit.k_stderr is None else f" ± {fit.k_stderr:.2f}"
    ax.plot(span, fit.c * span**fit.k, label=f"fit: k = {fit.k:.2f}{stderr}")
    anchor_b, anchor_lr = sizes[0], lrs[0]
    ax.plot(span, anchor_lr * (span / anchor_b), "--", label="linear rule (k = 1)")
    ax.plot(span, anchor_lr * np.sqrt(span / anchor_b), ":", label="square-root rule (k = 0.5)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("best learning rate")
    ax.set_title("best learning rate against batch size", fontsize="medium")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize="small", frameon=False)
    fig.tight_layout()
    save(fig, path)


def write_sweep_figures(
    trials: Sequence[StoredTrial],
    best: dict[int, BestLr],
    fit: PowerLawFit | None,
    folder: Path,
    prefix: str = "",
) -> list[Path]:
    """All the sweep's figures into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{prefix}{FIGURES[0]}", folder / f"{prefix}{FIGURES[1]}"]
    plot_accuracy_vs_iteration(trials, written[0])
    plot_heatmap(trials, written[1])
    lr = shared_lr(trials)
    if lr is not None:
        written.append(folder / f"{prefix}{FIGURES[2]}")
        plot_accuracy_vs_epoch(trials, lr, written[-1])
    if fit is not None:
        written.append(folder / f"{prefix}{FIGURES[3]}")
        plot_fit(best, fit, written[-1])
    return written
