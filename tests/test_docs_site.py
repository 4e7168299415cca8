"""The documentation site (mkdocs.yml) builds with ``--strict``: every page in the nav, no
broken link, anchor or image; and what is generated at build time holds what it is generated
from: a CLI reference page per command with every option the command has, and the benchmarks
page with every heading of BENCHMARKS.md."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from lrkit.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


def page_text(path: Path) -> str:
    """A built page's text, tags dropped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        # This checkout's lrkit, whatever an editable install elsewhere points at.
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "NO_MKDOCS_2_WARNING": "1",
    }
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    done = subprocess.run(
        build, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    return out


def test_the_site_builds_with_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "getting-started" / "pytorch" / "index.html").is_file()


def test_every_command_has_a_reference_page_with_its_options(site: Path) -> None:
    group = typer.main.get_command(app)
    context = group.make_context("lrkit", [], resilient_parsing=True)
    names = group.list_commands(context)  # type: ignore[attr-defined]
    assert "find" in names
    overview = page_text(site / "reference" / "cli" / "index.html")
    for name in names:
        command = group.get_command(context, name)  # type: ignore[attr-defined]
        text = page_text(site / "reference" / "cli" / name / "index.html")
        assert f"Usage: lrkit {name} [OPTIONS]" in text
        options = [opt for param in command.params for opt in param.opts if opt.startswith("--")]
        assert options, name
        missing = [opt for opt in options if opt not in text]
        assert not missing, f"lrkit {name}'s reference page lacks {missing}"
        assert f"lrkit {name}" in overview


def test_the_benchmarks_page_is_benchmarks_md(site: Path) -> None:
    source = (ROOT / "BENCHMARKS.md").read_text()
    headings = [m.group(1).replace("`", "") for m in re.finditer(r"^#+ (.+)$", source, re.M)]
    assert headings[0] == "Benchmarks"
    text = page_text(site / "benchmarks" / "index.html")
    missing = [h for h in headings if h not in text]
    assert not missing, f"the benchmarks page lacks {missing}"


def test_the_ask_tell_example_prints_what_its_page_shows(tmp_path: Path) -> None:
    """The numpy range test of getting-started/ask-tell.md, run as written: its output is
    the one pasted below it, and it imports no torch."""
    page = (ROOT / "docs" / "getting-started" / "ask-tell.md").read_text()
    script = re.search(r'```python\n("""A range test of linear regression.*?)```', page, re.S)
    shown = re.search(r"```console\n\$ python numpy_range_test\.py\n(.*?)```", page, re.S)
    assert script is not None and shown is not None
    (tmp_path / "numpy_range_test.py").write_text(script.group(1))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "numpy_range_test.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown.group(1)
    assert "torch imported: False" in done.stdout
