"""The report's sections for a sweep read from the store: its settings (and the trials that
failed, with what they raised), the curves, the heatmap, the best learning rate per batch size
with its noise, and the scaling rules. Failed trials are left out of the figures and the
ranking (:func:`lrkit.sweep.analysis.scored_trials`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from lrkit.report.page import Figure, Section, Table, svg_figure
from lrkit.scaling import FORMULAS, compare_rules
from lrkit.sweep.analysis import BestLr, best_lr_by_batch_size, fit_best, scored_trials
from lrkit.sweep.store import StoredTrial, SweepRow


def sweep_report(
    row: SweepRow, trials: Sequence[StoredTrial], val_size: int | None
) -> list[Section]:
    """Every section of one sweep: its settings, then its curves and best learning rates
    over the trials that did not fail (none when all did)."""
    settings = settings_section(row, trials)
    scored = scored_trials(trials)
    if not scored:
        settings.paragraphs.append(
            "Every trial failed: there are no curves and no best learning rate to show."
        )
        return [settings]
    return [settings, curves_section(scored), best_section(scored, val_size)]


def settings_section(row: SweepRow, trials: Sequence[StoredTrial]) -> Section:
    definition = row.definition
    shown = [
        [
            name.replace("_", " "),
            "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value),
        ]
        for name, value in definition.items()
    ]
    sizes = sorted({t.batch_size for t in trials})
    lrs = sorted({t.lr for t in trials})
    repeats = max((t.repeat for t in trials), default=0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in sorted(row.counts.items()))
    seconds = math.fsum(t.seconds for t in trials if t.seconds is not None)
    return Section(
        f"Sweep '{row.name}': settings",
        [
            f"{len(trials)} trials ({counts}): learning rates {', '.join(f'{lr:g}' for lr in lrs)} "
            f"x batch sizes {', '.join(map(str, sizes))} x {repeats} repeat(s); created "
            f"{row.created_at}; {seconds:.0f} s of training in all.",
        ],
        tables=[Table(["setting", "value"], shown, "How every trial trained."), *_failures(trials)],
    )


def _failures(trials: Sequence[StoredTrial]) -> list[Table]:
    """The failed trials and what each raised (no table when none failed)."""
    rows = [
        [str(t.batch_size), f"{t.lr:g}", str(t.repeat), t.error or "-"]
        for t in trials
        if t.status == "failed"
    ]
    if not rows:
        return []
    caption = (
        "Failed trials: training raised. They are left out of the figures and the ranking; "
        "running the sweep again retries them."
    )
    return [Table(["batch size", "lr", "repeat", "error"], rows, caption)]


def curves_section(trials: Sequence[StoredTrial]) -> Section:
    from lrkit.plots.sweep import plot_heatmap

    # A figure per batch size, so that each stays legible at a phone's width.
    by_size: dict[int, list[StoredTrial]] = {}
    for trial in trials:
        by_size.setdefault(trial.batch_size, []).append(trial)
    curves = [_curve_figure(size, group) for size, group in sorted(by_size.items())]
    return Section(
        "Validation accuracy",
        figures=[
            *curves,
            svg_figure(
                lambda p: plot_heatmap(trials, p),
                "Final validation accuracy for every batch size x learning rate. The best cell "
                "of each row moving right as the batch grows is the scaling the rules describe.",
                "heatmap of batch size x learning rate",
            ),
        ],
    )


def _curve_figure(size: int, group: Sequence[StoredTrial]) -> Figure:
    from lrkit.plots.sweep import plot_accuracy_vs_iteration

    def draw(path: Path) -> None:
        plot_accuracy_vs_iteration(group, path)

    return svg_figure(
        draw,
        f"Batch size {size}: validation accuracy against iteration, a line per learning rate "
        "(bands: the spread over repeats). Read which lr climbs fastest and which ends highest.",
        f"accuracy against iteration at batch size {size}",
    )


def best_section(trials: Sequence[StoredTrial], val_size: int | None) -> Section:
    best = best_lr_by_batch_size(trials, "final", val_size)
    rows = []
    for size, winner in best.items():
        runner = winner.runner_up
        noise = "-" if winner.within_noise is None else ("yes" if winner.within_noise else "no")
        rows.append(
            [
                str(size),
                f"{winner.lr:g}",
                f"{winner.mean:.4f} ± {winner.std:.4f}",
                "-" if runner is None else f"{runner.lr:g} ({runner.mean:.4f})",
                noise,
            ]
        )
    section = Section(
        "Best learning rate by batch size",
        tables=[
            Table(
                ["batch size", "best lr", "final val accuracy", "runner-up", "within noise"],
                rows,
                "Mean ± spread over repeats. 'Within noise': the runner-up is within twice the "
                "combined standard error, so the data cannot tell the two apart.",
            )
        ],
    )
    _add_rules(section, best)
    return section


def _add_rules(section: Section, best: dict[int, BestLr]) -> None:
    fit = fit_best(best)
    if fit is None:
        section.paragraphs.append(
            "No scaling fit: it needs two batch sizes or more, each tried at two learning "
            "rates or more."
        )
        return
    section.paragraphs.append(f"Fit: {fit.describe()}.")
    from lrkit.plots.sweep import plot_fit

    section.figures.append(
        svg_figure(
            lambda p: plot_fit(best, fit, p),
            "The best lr against the batch size on log axes, with the fitted power law and "
            "the linear and square-root rules through the smallest batch: the rule whose line "
            "passes through the points is the one to use for this model.",
            "fit of the best learning rate against batch size",
        )
    )
    measured = {b: w.lr for b, w in best.items() if len(w.scores) >= 2}
    if len(measured) < 2:
        return
    comparison = compare_rules(measured)
    rules = list(comparison.predictions)
    rows = [
        [str(b), f"{lr:g}", *(f"{comparison.predictions[r][b]:.3g}" for r in rules)]
        for b, lr in comparison.measured.items()
    ]
    rows.append(["rms log2 error", "-", *(f"{comparison.errors[r]:.2f}" for r in rules)])
    section.tables.append(
        Table(
            ["batch size", "measured", *rules],
            rows,
            f"Each rule from the best lr at batch {comparison.reference}: "
            + "; ".join(f"{r}: {FORMULAS[r]}" for r in rules)
            + f" ({comparison.notes['noise']}). An error of 1.0 is a factor of 2.",
        )
    )
