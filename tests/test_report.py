"""`lrkit report` and `--report`: a self-contained page, checked as a person would see it in
headless Chromium (no console errors, every image loaded, the headings and rows there) at
laptop and phone widths; its Markdown form, with text from the inputs escaped in both; failed
trials; and its bad input, down to a wrong field in a result file."""

from __future__ import annotations

import copy
import html
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli_run import run
from lrkit.errors import LrkitValueError
from lrkit.noise.tracking import NoisePoint, NoiseRun
from lrkit.rangetest.core import Hold, Point, RoundRecord
from lrkit.rangetest.result import RangeTestResult, RoundResult
from lrkit.report.page import Section, Table, markdown
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.store import Store
from lrkit.training.loop import CurvePoint, TrialOutcome

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
SWEEP_HEADINGS = [
    "Sweep 'textbook': settings",
    "Validation accuracy",
    "Best learning rate by batch size",
    "Machine and versions",
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def reproduce_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    saved = os.environ.pop("LRKIT_DATA_DIR", None)
    try:
        code = _main(
            ["reproduce", "--quick", "--out", str(folder), "--report", str(folder / "r.html")]
        )
    finally:
        if saved is not None:
            os.environ["LRKIT_DATA_DIR"] = saved
    assert code == 0
    return folder / "r.html"


def _main(args: list[str]) -> int:
    from lrkit.cli.app import main

    return main(args)


def chromium_path() -> str | None:
    for name in (os.environ.get("LRKIT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


@pytest.mark.slow
def test_the_page_is_self_contained_with_a_caption_per_figure(reproduce_page: Path) -> None:
    page = reproduce_page.read_text(encoding="utf-8")
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith("data:") for link in links)  # nothing fetched
    assert "<style>" in page and "<script" not in page
    assert page.count("<img ") == page.count("<figcaption>") >= 3
    for heading in SWEEP_HEADINGS:
        assert f"<h2>{html.escape(heading)}</h2>" in page
    assert html.escape("The chapter's claims") in page


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height", "name"), [(1280, 900, "laptop"), (390, 844, "phone")])
def test_the_page_in_headless_chromium(
    reproduce_page: Path, width: int, height: int, name: str
) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    binary = chromium_path()
    if binary is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set LRKIT_CHROMIUM)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(reproduce_page.as_uri())
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])"
            )
            headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
            cells = page.eval_on_selector_all("td", "els => els.map(e => e.textContent)")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"report-{name}.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert len(images) >= 3 and all(done and w > 0 and h > 0 for done, w, h in images)
    assert headings[: len(SWEEP_HEADINGS)] == SWEEP_HEADINGS
    assert {"16", "32", "128", "256"} <= set(cells)  # the best-lr table's batch sizes
    assert overflow <= 1  # nothing wider than the screen: tables scroll in their own box


def test_report_from_find_and_noise_results_and_as_markdown(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        ["find", "--no-plot", "--json", "f.json", "--segments", "0.01:0.1:0.01@5,0.2:3:0.2@5"],
        capsys,
    )
    assert code == 0, err
    code, _, err = run(
        [
            "noise",
            "--epochs",
            "0.5",
            "--measure-every",
            "0.25",
            "--examples",
            "128",
            "--json",
            "n.json",
        ],
        capsys,
    )
    assert code == 0, err
    code, _, err = run(["report", "--find", "f.json", "--noise", "n.json", "-o", "r.html"], capsys)
    assert code == 0, err
    page = (workdir / "r.html").read_text(encoding="utf-8")
    assert (
        "<h2>Range test (f.json)</h2>" in page and "<h2>Gradient noise scale (n.json)</h2>" in page
    )
    assert page.count("<img ") == 2 and "Which to use: the turning point" in page
    code, _, err = run(["report", "--find", "f.json", "--format", "md", "-o", "r.md"], capsys)
    assert code == 0, err
    text = (workdir / "r.md").read_text(encoding="utf-8")
    assert "## Range test (f.json)" in text
    assert "| rule | lr |  |" in text and "| turning_point |" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to report: give --store, --find or --noise"),
        (["--find", "missing.json"], "--find missing.json: cannot read it as JSON"),
        (["--store", "missing.sqlite"], "--store missing.sqlite does not exist"),
        (["--store", "x", "--format", "pdf"], "--format must be one of html, md"),
    ],
)
def test_report_bad_input(
    workdir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["report", *args], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


SCRIPT = "<script>alert(1)</script>"
LINK = "**bold** [link](javascript:alert(2)) `code` | cell"
CURVE = (CurvePoint(0, 0.0, math.nan, 2.3, 0.1), CurvePoint(10, 0.5, 1.0, 0.9, 0.7))


def definition(model: str = "mnist-mlp") -> SweepDefinition:
    return SweepDefinition(
        model, "MNIST sample", "cross-entropy", 0.5, 0.5, 1 / 12, "sgd", 0.0, 0.0, None, None, 0
    )


def write_store(path: Path, name: str, model: str, outcomes: dict[TrialKey, TrialOutcome]) -> None:
    with Store.open(path) as store:
        sweep = store.sweep(name, definition(model))
        for key, outcome in outcomes.items():
            store.mark_running(sweep, key, seed=0)
            store.save_trial(sweep, key, outcome)


def done(accuracy: float) -> TrialOutcome:
    points = (*CURVE[:1], CurvePoint(10, 0.5, 1.0, 0.9, accuracy))
    return TrialOutcome("done", None, points, accuracy - 0.01, 0.2)


FAILED = TrialOutcome("failed", None, CURVE[:1], None, 0.1, "RuntimeError: boom")


def range_test_document(model: str = "mnist-mlp") -> dict[str, Any]:
    """What lrkit find --json writes for a one-round test over five learning rates."""
    lrs = (0.01, 0.03, 0.1, 0.3, 1.0)
    losses = (2.3, 2.0, 1.5, 1.8, 3.0)
    record = RoundRecord(
        "0.01:1:x",
        tuple(
            Point(i, lr, loss, loss) for i, (lr, loss) in enumerate(zip(lrs, losses, strict=True))
        ),
        tuple(Hold(lr, loss, None, 1, True) for lr, loss in zip(lrs, losses, strict=True)),
        None,
        "end of program",
    )
    suggestions = {"turning_point": 0.05, "valley": 0.03, "steepest": 0.03, "minimum": 0.01}
    round_result = RoundResult(record, "mean", lrs, losses, suggestions, None)
    result = RangeTestResult(
        model, "MNIST sample", 64, "cpu", (round_result,), suggestions, "turning_point", 0.05, 1.0
    )
    return result.to_json()


def noise_document(model: str = "mnist-mlp") -> dict[str, Any]:
    """What lrkit noise --json writes for a run measured twice."""
    points = (
        NoisePoint(0, 0.0, 50.0, 5.0, 50.0, 1.0, 50.0, math.nan, 2.3),
        NoisePoint(10, 0.25, 80.0, 8.0, 60.0, 0.5, 40.0, 1.5, 1.4),
    )
    return NoiseRun(model, "MNIST sample", 64, 0.1, "two-batch", 128, points, "done", 1.0).to_json()


def write_json_file(path: Path, document: object) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")


def test_text_from_the_inputs_is_escaped_in_markdown_and_html(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_store(workdir / "s.sqlite", SCRIPT, LINK, {TrialKey(16, 0.1, 0): done(0.7)})
    write_json_file(workdir / "f.json", range_test_document(SCRIPT))
    write_json_file(workdir / "n.json", noise_document(LINK))
    inputs = ["--store", "s.sqlite", "--find", "f.json", "--noise", "n.json"]
    code, _, err = run(["report", *inputs, "--format", "md", "-o", "r.md"], capsys)
    assert code == 0, err
    text = (workdir / "r.md").read_text(encoding="utf-8")
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    tags = set(re.findall(r"<(\w+)", rendered))
    assert tags <= {"h1", "h2", "p", "em", "table", "thead", "tbody", "tr", "th", "td"}
    shown = html.unescape(rendered)
    assert f"Sweep '{SCRIPT}': settings" in shown
    assert f"<td>{LINK}</td>" in shown  # the model in the settings table, as written
    assert f"{SCRIPT} on MNIST sample" in shown and f"{LINK}, batch size 64" in shown
    code, _, err = run(["report", *inputs, "-o", "r.html"], capsys)
    assert code == 0, err
    page = (workdir / "r.html").read_text(encoding="utf-8")
    assert "<script" not in page and html.escape(SCRIPT) in page


# Text that Markdown would read as markup: blocks, inline marks, HTML, entities.
MARKDOWN_SYNTAX = [
    "1. x",
    "- x",
    "+ x",
    "# x #",
    "> x",
    "```py",
    "~~~",
    "    code",
    "a  \nb",
    "a\\",
    "<!-- c -->",
    "&copy; &#65;",
    "***",
    "---",
    "___",
    "===",
    "[a]: /url",
    "![i](x)",
    "<http://x>",
    "a*b*c",
    "_a_ __b__ a_b_ x _y_",
    "\\*",
    "1) x",
    "a | b",
    "`x`",
    "~~s~~",
    "<b>bold</b>",
    "2.",
]


def check_renders_as_itself(text: str) -> None:
    """``text`` as a paragraph and as a table cell of the Markdown report renders, in a
    CommonMark renderer, as ``text`` itself (its whitespace runs as one space)."""
    markdown_it = pytest.importorskip("markdown_it")
    words = " ".join(text.split())
    section = Section("s", [text], tables=[Table(["h"], [[text]])])
    rendered = (
        markdown_it.MarkdownIt("commonmark")
        .enable("table")
        .render(markdown("t", "lead", [section]))
    )
    paragraphs = re.findall(r"<p>(.*?)</p>", rendered, re.DOTALL)
    cells = re.findall(r"<td>(.*?)</td>", rendered, re.DOTALL)
    assert [html.unescape(p) for p in paragraphs] == ["lead", *([words] if words else [])]
    assert [html.unescape(c) for c in cells] == [words]


@pytest.mark.parametrize("text", MARKDOWN_SYNTAX)
def test_markdown_syntax_in_text_renders_as_itself(text: str) -> None:
    check_renders_as_itself(text)


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))))
def test_any_text_renders_in_markdown_as_itself(text: str) -> None:
    check_renders_as_itself(text)


def test_failed_trials_are_listed_with_their_error_and_left_out_of_the_ranking(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = {TrialKey(16, 0.1, 0): done(0.7), TrialKey(16, 0.3, 0): FAILED}
    write_store(workdir / "s.sqlite", "mixed", "mnist-mlp", outcomes)
    code, _, err = run(["report", "--store", "s.sqlite", "--format", "md", "-o", "r.md"], capsys)
    assert code == 0, err
    text = (workdir / "r.md").read_text(encoding="utf-8")
    assert "2 trials (1 done, 1 failed)" in text
    assert "| 16 | 0.3 | 0 | RuntimeError: boom |" in text
    assert "Failed trials: training raised." in text
    assert "| 16 | 0.1 | 0.7000 ± 0.0000 | - | - |" in text  # 0.3 is no runner-up


def test_a_sweep_whose_every_trial_failed_is_reported_as_such(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_store(workdir / "s.sqlite", "broken", "mnist-mlp", {TrialKey(16, 0.3, 0): FAILED})
    code, _, err = run(["report", "--store", "s.sqlite", "--format", "md", "-o", "r.md"], capsys)
    assert code == 0, err
    text = (workdir / "r.md").read_text(encoding="utf-8")
    assert "Every trial failed: there are no curves and no best learning rate to show." in text
    assert "## Validation accuracy" not in text and "## Best learning rate" not in text


def test_a_report_from_result_files_as_lrkit_writes_them(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_json_file(workdir / "f.json", range_test_document())
    write_json_file(workdir / "n.json", noise_document())
    code, _, err = run(["report", "--find", "f.json", "--noise", "n.json", "-o", "r.html"], capsys)
    assert code == 0, err
    page = (workdir / "r.html").read_text(encoding="utf-8")
    assert "Suggested learning rate: 0.05 (turning_point)" in page
    assert "Critical batch size ~ 60" in page


def changed(path: tuple[str | int, ...], value: object) -> Callable[[Any], Any]:
    """The document with the field at ``path`` set to ``value`` (removed for MISSING)."""

    def change(document: Any) -> Any:
        inner = document
        for step in path[:-1]:
            inner = inner[step]
        if value is MISSING:
            del inner[path[-1]]
        else:
            inner[path[-1]] = value
        return document

    return change


MISSING = object()
NOT_FIND = "--find f.json: not a file written by lrkit find --json"
NOT_NOISE = "--noise n.json: not a file written by lrkit noise --json"
LR = "a learning rate (a finite number > 0)"


def second_round_without_turning_point(document: Any) -> Any:
    narrowed = copy.deepcopy(document["rounds"][0])
    narrowed["suggestions"] = {}
    document["rounds"].append(narrowed)
    return document


@pytest.mark.parametrize(
    ("option", "change", "message"),
    [
        ("--find", changed(("rounds",), MISSING), f"{NOT_FIND} (field 'rounds' is missing)"),
        ("--find", changed(("rounds",), 5), f"{NOT_FIND} (field 'rounds' is not a list (got 5))"),
        ("--find", changed(("rounds",), []), f"{NOT_FIND} (field 'rounds' is empty)"),
        (
            "--find",
            changed(("rounds", 0), "x"),
            f"{NOT_FIND} (field 'rounds[0]' is not an object (got 'x'))",
        ),
        (
            "--find",
            changed(("rounds", 0, "curve_lrs", 1), "fast"),
            f"{NOT_FIND} (field 'rounds[0].curve_lrs[1]' is not {LR} (got 'fast'))",
        ),
        (
            "--find",
            changed(("rounds", 0, "curve_lrs", 1), -0.1),
            f"{NOT_FIND} (field 'rounds[0].curve_lrs[1]' is not {LR} (got -0.1))",
        ),
        (
            "--find",
            changed(("rounds", 0, "curve_losses"), [1.0]),
            f"{NOT_FIND} (field 'rounds[0].curve_losses' has 1 values for 5 lrs)",
        ),
        (
            "--find",
            changed(("rounds", 0, "points", 2, "iteration"), 1.5),
            f"{NOT_FIND} (field 'rounds[0].points[2].iteration' is not an integer (got 1.5))",
        ),
        (
            "--find",
            changed(("rounds", 0, "holds", 0, "lr"), MISSING),
            f"{NOT_FIND} (field 'rounds[0].holds[0].lr' is missing)",
        ),
        (
            "--find",
            second_round_without_turning_point,
            f"{NOT_FIND} (field 'rounds[1].suggestions.turning_point' is missing)",
        ),
        (
            "--find",
            changed(("batch_size",), "64"),
            f"{NOT_FIND} (field 'batch_size' is not an integer >= 1 (got '64'))",
        ),
        ("--find", changed(("model",), MISSING), f"{NOT_FIND} (field 'model' is missing)"),
        (
            "--find",
            changed(("suggestions",), [0.1]),
            f"{NOT_FIND} (field 'suggestions' is not an object (got a list))",
        ),
        (
            "--find",
            changed(("suggestions", "valley"), "x"),
            f"{NOT_FIND} (field 'suggestions.valley' is not {LR} (got 'x'))",
        ),
        ("--find", lambda _: noise_document(), f"{NOT_FIND} (field 'rounds' is missing)"),
        ("--find", lambda _: [1, 2], f"{NOT_FIND} (it holds a list, not an object)"),
        ("--noise", changed(("points",), MISSING), f"{NOT_NOISE} (field 'points' is missing)"),
        (
            "--noise",
            changed(("points", 1, "epoch"), MISSING),
            f"{NOT_NOISE} (field 'points[1].epoch' is missing)",
        ),
        (
            "--noise",
            changed(("points", 0, "b_simple"), "big"),
            f"{NOT_NOISE} (field 'points[0].b_simple' is not a number (got 'big'))",
        ),
        (
            "--noise",
            changed(("batch_size",), 0),
            f"{NOT_NOISE} (field 'batch_size' is not an integer >= 1 (got 0))",
        ),
        (
            "--noise",
            changed(("model",), 5),
            f"{NOT_NOISE} (field 'model' is not a string (got 5))",
        ),
        ("--noise", lambda _: range_test_document(), f"{NOT_NOISE} (field 'points' is missing)"),
    ],
)
def test_a_result_file_with_a_field_missing_or_wrong_is_refused_naming_it(
    workdir: Path,
    option: str,
    change: Callable[[Any], Any],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, document = (
        ("f.json", range_test_document())
        if option == "--find"
        else (
            "n.json",
            noise_document(),
        )
    )
    write_json_file(workdir / name, change(document))
    code, out, err = run(["report", option, name, "-o", "r.html"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (workdir / "r.html").exists()


def test_a_noise_run_that_diverged_reads_back_with_where_it_diverged(workdir: Path) -> None:
    from lrkit.report.results import load_noise_run

    diverged = NoiseRun("m", "d", 64, 0.1, "two-batch", 128, (), "diverged", 1.0, diverged_at=12)
    write_json_file(workdir / "n.json", diverged.to_json())
    assert load_noise_run(workdir / "n.json") == diverged
    write_json_file(workdir / "n.json", {**diverged.to_json(), "diverged_at": 0})
    with pytest.raises(LrkitValueError, match=r"field 'diverged_at' is not an integer >= 1"):
        load_noise_run(workdir / "n.json")
