"""The report's sections for a range test, a noise-scale run and an advice (a race)."""

from __future__ import annotations

import math

from lrkit.advise.result import Advice, RacedCandidate
from lrkit.noise.tracking import NoiseRun
from lrkit.rangetest.result import RangeTestResult
from lrkit.report.page import Section, Table, svg_figure

WHICH_RULE = (
    "Which to use: the turning point (the default) is half the lr where the loss stops "
    "falling, the textbook's reading of the curve; valley and steepest sit in the steep part "
    "(fastai's choices, more aggressive); minimum is a tenth of the lowest point, the "
    "cautious one. Where they disagree, train at the turning point first."
)


def range_test_section(result: RangeTestResult, source: str) -> Section:
    from lrkit.plots.rangetest import plot_range_test

    rows = [
        [name, "-" if lr is None else f"{lr:.3g}", "suggested" if name == result.method else ""]
        for name, lr in result.suggestions.items()
    ]
    lead = (
        f"{result.model} on {result.data}, batch size {result.batch_size}, "
        f"{len(result.rounds)} round(s), {result.engine} engine, {result.seconds:.1f} s."
    )
    if result.suggested_lr is not None:
        lead += f" Suggested learning rate: {result.suggested_lr:.3g} ({result.method})."
    if result.suggested_lr_by_repeat:
        each = ", ".join("-" if v is None else f"{v:.3g}" for v in result.suggested_lr_by_repeat)
        lead += f" Each repeat alone: {each}."
    return Section(
        f"Range test ({source})",
        [lead, WHICH_RULE],
        tables=[Table(["rule", "lr", ""], rows, "Every suggestion rule on this curve.")],
        figures=[
            svg_figure(
                lambda p: plot_range_test(result, p),
                "Loss against log10(lr), a panel per round; the vertical lines are the "
                "suggestions (solid: the one chosen) and where the loss diverged. Read where "
                "the loss stops falling: the lr to train with sits below it.",
                "range test",
            )
        ],
    )


def noise_section(run: NoiseRun, source: str) -> Section:
    from lrkit.plots.noise import plot_noise_scale

    def shown(value: float, stderr: float) -> str:
        if not math.isfinite(value):
            return "-"
        return f"{value:.3g} ± {stderr:.2g}" if math.isfinite(stderr) else f"{value:.3g}"

    rows = [
        [
            f"{p.epoch:.2f}",
            shown(p.b_simple, p.b_simple_stderr),
            shown(p.b_simple_smoothed, math.nan),
        ]
        for p in run.points
    ]
    critical = run.critical_batch_size
    reading = (
        f"Critical batch size ~ {critical:.3g} at the end of training: batches up to about "
        "that size still cut the number of steps almost in proportion; past it they buy little."
        if math.isfinite(critical)
        else "The critical batch size was not measured."
    )
    return Section(
        f"Gradient noise scale ({source})",
        [
            f"{run.model}, batch size {run.batch_size}, lr {run.lr:g}, {run.estimator} "
            f"estimator. {reading}"
        ],
        tables=[Table(["epoch", "B_simple", "smoothed"], rows)],
        figures=[
            svg_figure(
                lambda p: plot_noise_scale(run, p),
                "B_simple = tr(Sigma) / |G|^2 over training (log scale), with its standard "
                "error and the smoothed curve; the dashed line is the training batch size. "
                "It grows as the loss falls: the batch size worth using grows with it.",
                "gradient noise scale over training",
            )
        ],
    )


def advice_section(advice: Advice, source: str) -> Section:
    from lrkit.plots.advise import plot_advice

    def value(c: RacedCandidate) -> str:
        if c.status != "done" or not math.isfinite(c.value):
            return c.status
        if not math.isfinite(c.value_std):
            return f"{c.value:.4f}"
        return f"{c.value:.4f} ± {c.value_std:.4f}"

    rows = [
        [
            f"{c.lr:.4g}",
            ", ".join(c.sources),
            f"{c.epochs_run:g}",
            value(c),
            advice.mark(c.lr),
        ]
        for c in advice.candidates
    ]
    noise = {True: "within noise of it", False: "clearly behind it", None: "of unknown noise"}
    lead = (
        f"{advice.model} on {advice.data}, batch size {advice.batch_size}, {advice.optimizer}, "
        f"lr {advice.recipe}, a budget of {advice.epochs:g} epochs, {advice.engine} engine; "
        f"{advice.seconds:.1f} s in all ({advice.range_test_seconds:.1f} s of range test, "
        f"{advice.budgets_trained:.2f} budgets of training). Advised learning "
        f"rate: {advice.lr:.4g}, validation {advice.metric} {advice.value:.4f} at "
        f"{advice.decided_at:g} epochs."
    )
    note = advice.horizon_note()
    if note is not None:
        lead += f" {note[0].upper()}{note[1:]}."
    if advice.runner_up is not None:
        said = noise[advice.runner_up_within_noise]
        lead += f" The runner-up, {advice.runner_up:.4g}, is {said}."
    low, high = advice.as_good
    if high > low:
        lead += (
            f" As good as far as the race could tell (within noise where they were compared):"
            f" {low:.4g} to {high:.4g}."
        )
    for said in advice.cautions:
        lead += f" Caution: {said}."
    lead += f" Confidence: {advice.confidence_note()}."
    run = advice.finished
    if run is not None:
        lead += (
            f" Trained on to {advice.epochs:g} epochs at {run.lr:.4g} (--finish): {run.status}, "
            f"validation {advice.metric} {run.value:.4f}; "
            f"{advice.beyond_one_run or 0.0:.2f} budgets beyond that one run."
        )
    return Section(
        f"Advice ({source})",
        [
            lead,
            "The candidates are a ladder around the range test's default suggestion and the "
            "other rules' suggestions near it; they raced by successive halving, the better "
            "half at a sixth of the budget going on to half the budget, where the best won.",
        ],
        tables=[
            Table(
                ["lr", "from", "epochs", f"{advice.metric} (± noise)", ""],
                rows,
                "Every candidate: how far it ran and how it did there.",
            )
        ],
        figures=[
            svg_figure(
                lambda p: plot_advice(advice, p),
                "Left, the range test with the candidates marked; right, each candidate's "
                "validation curve over the race, ending where it was left behind. The advised "
                "rate is drawn bold.",
                "advice",
            )
        ],
    )
