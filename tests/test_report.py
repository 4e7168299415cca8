"""`lrkit report` and `--report`: a self-contained page, checked as a person would see it in
headless Chromium (no console errors, every image loaded, the headings and rows there) at
laptop and phone widths; its Markdown form; and its bad input."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import pytest

from cli_run import run

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


def test_the_page_is_self_contained_with_a_caption_per_figure(reproduce_page: Path) -> None:
    page = reproduce_page.read_text(encoding="utf-8")
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith("data:") for link in links)  # nothing fetched
    assert "<style>" in page and "<script" not in page
    assert page.count("<img ") == page.count("<figcaption>") >= 3
    for heading in SWEEP_HEADINGS:
        assert f"<h2>{html.escape(heading)}</h2>" in page
    assert html.escape("The chapter's claims") in page


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
        (["--store", "missing.sqlite"], "--store missing.sqlite: no such file"),
        (["--store", "x", "--format", "pdf"], "--format must be one of html, md"),
    ],
)
def test_report_bad_input(
    workdir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["report", *args], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
