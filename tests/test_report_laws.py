"""The report's sections for ``lrkit laws``: the ladder's table, each law in words with its
intervals, the held-out verdict (within / OUTSIDE) and every warning written out, the figures
embedded as SVG, and ``build_report(laws=...)`` placing them without changing other reports."""

from __future__ import annotations

import base64
import html
import re

import pytest

from law_ladders import (
    BOOTSTRAP,
    TOLERANCE,
    WIDTHS,
    bowl,
    fit,
    held_out,
    two_variable_groups,
    width_groups,
    width_optimum,
)
from lrkit.errors import LrkitValueError
from lrkit.laws.fit import FitSettings, choose_law
from lrkit.laws.words import law_formula, law_intervals
from lrkit.report.build import build_report
from lrkit.report.laws_section import laws_sections
from lrkit.report.page import escape_markdown, markdown, render

RUNGS = (
    ["width", "best lr", "band", "at grid's end"],
    [
        [32, 0.0107634741152, "0.01076 .. 0.01076", "yes"],
        [64, 0.00697924948905, "0.0064 .. 0.00761", ""],
    ],
)


def images(page: str) -> list[bytes]:
    """Every embedded image's bytes (each must be an SVG data URI)."""
    sources = re.findall(r'<img alt="[^"]*" src="([^"]*)"', page)
    assert all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    return [base64.b64decode(s.split(",", 1)[1]) for s in sources]


def scattered() -> dict[tuple[float, ...], list[tuple[float, float]]]:
    """Optima off the law by factors up to 3: the fit cannot place a prediction closely."""
    factors = (1.0, 3.0, 0.4, 2.0, 1.0)
    return {(w,): bowl(width_optimum(w) * f) for w, f in zip(WIDTHS, factors, strict=True)}


def test_a_law_with_its_check_and_prediction_in_words_and_figures() -> None:
    groups = width_groups()
    law, check = fit(groups, ["width"]), held_out(groups, ["width"])
    predicted = law.predict(2048.0)
    sections = laws_sections([("width ladder", law, check, predicted, "lr")], RUNGS)
    assert [s.title for s in sections] == [
        "The ladder: each rung's optimum",
        "Law: width ladder",
        "Held-out checks",
    ]
    page = render("lrkit report", "laws", sections)
    svgs = images(page)
    assert len(svgs) == page.count("<figcaption>") == 2  # the law, the checks
    assert all(b"<svg" in svg for svg in svgs)
    assert html.escape(law_formula(law)) in page and html.escape(law_intervals(law)) in page
    assert check.within
    assert html.escape(f"predicted / measured {check.ratio:.3g}: within.") in page
    assert html.escape(f"Predicted at width 2048: {predicted.value:.4g}") in page
    assert (
        html.escape("At the grid's edge (the optimum may lie beyond it, drawn hollow): width 32.")
        in page
    )
    assert "<th>at grid&#x27;s end</th>" in page and "<td>0.0107635</td>" in page
    assert "<td>within</td>" in page  # the checks' table
    assert predicted.warnings == () and "Warning" not in page


def test_a_batch_size_law_is_written_with_its_own_symbol() -> None:
    law = choose_law(
        width_groups(), ["width"], FitSettings(tolerance=TOLERANCE, bootstrap=BOOTSTRAP)
    )
    assert law.compared  # (so the held-out errors' sentence is written)
    (section,) = laws_sections([("B*(width)", law, None, None, "batch_size")])
    words = " ".join(section.paragraphs)
    assert law_formula(law, "batch_size") in words and words.startswith(("B* = ", "ln B* = "))
    assert "eta*" not in words and "(ln B*, each group" in words


def test_a_check_that_misses_says_outside() -> None:
    groups = width_groups()
    groups[(512.0,)] = bowl(3 * width_optimum(512.0))  # the law breaks at the largest rung
    check = held_out(groups, ["width"])
    sections = laws_sections([("broken", fit(groups, ["width"]), check, None, "lr")])
    page = render("lrkit report", "laws", sections)
    assert not check.within
    assert "OUTSIDE: do not trust the law&#x27;s extrapolation." in page
    assert "<td>OUTSIDE</td>" in page
    assert "OUTSIDE: do not trust" in markdown("lrkit report", "laws", sections)


def test_every_warning_is_written_out_in_html_and_markdown() -> None:
    groups = scattered()
    law, check = fit(groups, ["width"]), held_out(groups, ["width"])
    predicted = law.predict(1e6)
    assert len(predicted.warnings) == 2  # wide, and far outside the ladder
    assert check.prediction.warnings  # wide
    sections = laws_sections([("scattered", law, check, predicted, "lr")])
    page = render("lrkit report", "laws", sections)
    notes = markdown("lrkit report", "laws", sections)
    for warning in predicted.warnings:
        assert html.escape(f"Warning: {warning}.") in page
        assert escape_markdown(f"Warning: {warning}.") in notes
    for warning in check.prediction.warnings:
        assert html.escape(f"Warning (the check's prediction): {warning}.") in page


def test_a_law_in_two_variables_has_a_figure_against_each() -> None:
    law = fit(two_variable_groups(), ["N", "D"])
    sections = laws_sections([("eta(N, D)", law, None, law.predict(1024.0, 1e7), "lr")])
    assert [s.title for s in sections] == ["Law: eta(N, D)"]  # no check, no checks' section
    assert [f.alt for f in sections[0].figures] == ["law against N", "law against D"]
    assert len(images(render("lrkit report", "laws", sections))) == 2
    assert "Predicted at N 1024, D 1e+07" in sections[0].paragraphs[-1]


def test_a_rungs_table_with_a_short_row_is_refused() -> None:
    with pytest.raises(LrkitValueError, match="has 2 cells for 4 columns"):
        laws_sections([], (RUNGS[0], [[32, 0.01]]))


def test_build_report_places_the_laws_and_leaves_other_reports_alone() -> None:
    groups = width_groups()
    law, check = fit(groups, ["width"]), held_out(groups, ["width"])
    titles = [s.title for s in build_report(laws=[("w", law, check, None, "lr")], law_rungs=RUNGS)]
    assert titles == [
        "The ladder: each rung's optimum",
        "Law: w",
        "Held-out checks",
        "Machine and versions",
    ]
    assert [s.title for s in build_report()] == ["Machine and versions"]
