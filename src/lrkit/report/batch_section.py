"""The report's section on a batch-size advice (``lrkit advise`` without ``--batch-size``)."""

from __future__ import annotations

from lrkit.batchsize.result import BatchAdvice
from lrkit.report.page import Section, Table, svg_figure


def batch_advice_section(found: BatchAdvice, source: str) -> Section:
    from lrkit.plots.batch_advice import plot_batch_advice

    rows = []
    for p in found.predictions:
        rows.append(
            [
                str(p.batch_size),
                f"{p.step_seconds * 1e3:.3g}" if p.fits else "-",
                f"{p.steps_factor:.3g}",
                f"{p.relative_time:.3g}" if p.fits else "does not fit",
                f"{p.relative_progress:.3g}",
                found.outcome(p.batch_size),
                "advised" if p.batch_size == found.batch_size else "",
            ]
        )
    noise = found.noise
    lead = (
        f"{found.model} on {found.data}, for {found.budget()}: batch size "
        f"{found.batch_size} at learning rate {found.lr:.4g}; {found.reason}. The noise scale "
        f"B_noise = {noise.b_noise:.3g} ± {noise.stderr:.2g} was measured at batch size "
        f"{noise.batch_size} at lr {noise.lr:.3g}, {noise.where()}; the largest "
        f"batch that fits is {found.ceiling.batch_size} ({found.ceiling.method}). "
        f"{found.seconds:.1f} s in all."
    )
    return Section(
        f"Batch size ({source})",
        [
            lead,
            "McCandlish et al. (2018): reaching a given loss takes S_min (1 + B_noise / B) steps "
            "and E_min (1 + B / B_noise) examples; with the measured step time t(B) the time "
            "is S_min t(B) (1 + B_noise / B). The learning rate was raced at the predicted "
            "size and its neighbours, and the measured outcome decided.",
        ],
        tables=[
            Table(
                ["batch", "step ms", "S/S_min", "time/best", "epochs' worth", "race", ""],
                rows,
                "Every candidate batch size: measured, predicted, and raced.",
            )
        ],
        figures=[
            svg_figure(
                lambda path: plot_batch_advice(found, path),
                "Left, the predicted time against batch size with the measured step time; "
                "right, each race's winner against training time.",
                "batch-advice",
            )
        ],
    )
