"""The report's sections for fitted laws (``lrkit laws``): the ladder's table of rungs, then
for each law its formula and intervals, the held-out check's verdict, the prediction with
its warnings and the figure against each variable; last, the held-out checks together."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from lrkit.errors import LrkitValueError
from lrkit.laws.fit import HeldOutCheck, LawFit, Prediction
from lrkit.laws.words import (
    law_formula,
    law_intervals,
    law_values,
    ln_error,
    resolution_sentence,
    symbol,
)
from lrkit.report.page import Section, Table, svg_figure

LawEntry = tuple[str, LawFit, HeldOutCheck | None, Prediction | None, str]
"""A law as the report shows it: its title, the fit, its held-out check, a prediction and its
quantity (``"lr"`` or ``"batch_size"``)."""
Cell = str | int | float
RungTable = tuple[Sequence[str], Sequence[Sequence[Cell]]]
"""The ladder's rungs as the caller tabulates them: a header and rows."""


def laws_sections(laws: Sequence[LawEntry], rungs: RungTable | None = None) -> list[Section]:
    """The ladder (``rungs``, where given), a section per law, and the held-out checks."""
    sections = [] if rungs is None else [rungs_section(*rungs)]
    sections += [law_section(*entry) for entry in laws]
    checks = [(title, fit, held) for title, fit, held, _, _ in laws if held is not None]
    if checks:
        sections.append(held_out_section(checks))
    return sections


def rungs_section(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> Section:
    """The caller's table of rungs (numbers written to 6 significant figures)."""
    for row in rows:
        if len(row) != len(header):
            raise LrkitValueError(
                f"a row of the rungs' table has {len(row)} cells for {len(header)} columns"
            )
    return Section(
        "The ladder: each rung's optimum",
        [
            "Each rung's best learning rate is the centre, on a log scale, of its band of "
            "near-best runs (those within a small tolerance of its best loss: Step Law's "
            "0.25% by default); a band at the grid's end means the optimum may lie beyond it."
        ],
        tables=[Table(list(header), [[_cell(c) for c in row] for row in rows])],
    )


def law_section(
    title: str,
    fit: LawFit,
    held_out: HeldOutCheck | None,
    prediction: Prediction | None,
    quantity: str,
) -> Section:
    """The law in words, its check's verdict, its prediction and every warning plainly, and
    its figure against each of its variables."""
    from lrkit.plots.figure import save
    from lrkit.plots.laws import plot_law

    paragraphs = [
        f"{law_formula(fit, quantity)}, fitted to {len(fit.groups)} groups' optima by least "
        f"squares on logs; {law_intervals(fit)} (from {len(fit.draws)} bootstrap refits)."
    ]
    forms = ", ".join(f"{form} {ln_error(e)}" for form, e in fit.compared if math.isfinite(e))
    if forms:
        paragraphs.append(
            f"Held-out error (ln {symbol(quantity)}, each group left out in turn): {forms}; "
            f"the {fit.form} form was kept."
        )
    resolution = resolution_sentence(fit, quantity)
    if resolution is not None:
        paragraphs.append(resolution[0].upper() + resolution[1:] + ".")
    edge = [values for values, optimum in fit.groups if optimum.at_edge]
    if edge:
        paragraphs.append(
            "At the grid's edge (the optimum may lie beyond it, drawn hollow): "
            + "; ".join(law_values(fit, v) for v in edge)
            + "."
        )
    if held_out is not None:
        paragraphs.append(held_out_sentence(fit, held_out))
        paragraphs += [
            f"Warning (the check's prediction): {w}." for w in held_out.prediction.warnings
        ]
    if prediction is not None:
        paragraphs.append(
            f"Predicted at {law_values(fit, prediction.values)}: {prediction.value:.4g} "
            f"({prediction.level:.0%} interval {prediction.low:.4g} .. {prediction.high:.4g}; "
            f"a measurement there should fall in {prediction.measured_low:.4g} .. "
            f"{prediction.measured_high:.4g})."
        )
        paragraphs += [f"Warning: {w}." for w in prediction.warnings]

    def draw(variable: int) -> Callable[[Path], None]:
        return lambda path: save(
            plot_law(
                fit,
                variable=variable,
                prediction=prediction,
                held_out=held_out,
                quantity=quantity,
            ),
            path,
        )

    marks = []
    if len(fit.variables) > 1:
        marks.append("a line per value of the other variables")
    if prediction is not None:
        marks.append("the star is the prediction")
    if held_out is not None:
        marks.append("the square and diamond the held-out group measured and predicted")
    figures = [
        svg_figure(
            draw(i),
            f"Each group's optimum against {name} (bar: its band of near-best runs; hollow at "
            "the grid's edge) with the law and the shaded interval of its refits"
            + "".join(f"; {m}" for m in marks)
            + ".",
            f"law against {name}",
        )
        for i, name in enumerate(fit.variables)
    ]
    return Section(f"Law: {title}", paragraphs, figures=figures)


def held_out_sentence(fit: LawFit, held_out: HeldOutCheck) -> str:
    """The check and its verdict: within, or OUTSIDE."""
    predicted, measured = held_out.prediction, held_out.measured
    verdict = "within" if held_out.within else "OUTSIDE: do not trust the law's extrapolation"
    return (
        f"Check: {law_values(fit, held_out.values)} predicted from the other groups at "
        f"{predicted.value:.4g} (where its measurement should fall: "
        f"{predicted.measured_low:.4g} .. {predicted.measured_high:.4g}), measured "
        f"{measured.lr:.4g} (band {measured.low:.4g} .. {measured.high:.4g}), predicted / "
        f"measured {held_out.ratio:.3g}: {verdict}."
    )


def held_out_section(checks: Sequence[tuple[str, LawFit, HeldOutCheck]]) -> Section:
    """Every check in one table and one figure (each law titled, its check's values named
    by its variables)."""
    from lrkit.plots.figure import save
    from lrkit.plots.laws import plot_held_out

    rows = [
        [
            title,
            law_values(fit, held.values),
            f"{held.prediction.value:.4g}",
            f"{held.prediction.measured_low:.4g} .. {held.prediction.measured_high:.4g}",
            f"{held.measured.lr:.4g}",
            f"{held.ratio:.3g}",
            "within" if held.within else "OUTSIDE",
        ]
        for title, fit, held in checks
    ]
    return Section(
        "Held-out checks",
        [
            "Each law's largest group predicted from a fit to the others, against its measured "
            "optimum: a law that misses it should not be trusted further out."
        ],
        tables=[
            Table(
                [
                    "law",
                    "held out",
                    "predicted",
                    "a measurement should fall",
                    "measured",
                    "ratio",
                    "",
                ],
                rows,
            )
        ],
        figures=[
            svg_figure(
                lambda path: save(plot_held_out([(t, held) for t, _, held in checks]), path),
                "Predicted against measured optimum, each law's check a point (bars: where a "
                "measurement should fall, and the measured band), about y = x and a factor of "
                "sqrt(2) either way.",
                "held-out checks",
            )
        ],
    )


def _cell(value: Cell) -> str:
    """A number as a person writes it (no float noise), text as it is."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
