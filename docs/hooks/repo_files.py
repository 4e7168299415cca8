"""MkDocs hook: files of the repository outside ``docs/`` that the pages link to.

The pages link to them as GitHub shows the repository (``../BENCHMARKS.md``,
``../../bench/results/reproduce/heatmap.png``), so the same Markdown reads right on GitHub and
on the site. For the site:

- ``BENCHMARKS.md`` at the repository's root becomes the page ``benchmarks.md``, read when the
  site is built (no copy is kept in ``docs/``); links to it, anchors included, go to that page;
- any other existing file a page links to outside ``docs/`` (the figures ``lrkit reproduce``
  writes under ``bench/results/``) is copied into the site under ``repo/`` with its path, and
  the link is rewritten to it.

A link that leaves the repository, or names a file that does not exist, is left as it is, for
``mkdocs build --strict`` to report.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"BENCHMARKS.md": "benchmarks.md"}
"""Markdown files at the root that become pages: repository path -> page."""
COPIES = "repo"
"""Where other repository files go in the site."""

# The target of an inline link or image: ](target) or ](target "title").
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\s+\"[^\"]*\")?\)")


def _repo_path(page_uri: str, target: str, docs_dir: Path) -> str | None:
    """The repository-relative path of a relative link's target outside docs_dir, or None."""
    if "://" in target or target.startswith(("/", "mailto:")):
        return None
    source = docs_dir / page_uri
    resolved = (source.parent / target).resolve()
    try:
        resolved.relative_to(docs_dir)
        return None  # inside docs/: MkDocs resolves it
    except ValueError:
        pass
    try:
        relative = resolved.relative_to(ROOT)
    except ValueError:
        return None
    return relative.as_posix() if resolved.is_file() else None


def _site_uri(repo_path: str) -> str:
    return PAGES.get(repo_path, f"{COPIES}/{repo_path}")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    docs_dir = Path(config.docs_dir).resolve()
    for repo_path, page in PAGES.items():
        files.append(File.generated(config, page, content=(ROOT / repo_path).read_text()))
    wanted: set[str] = set()
    for file in files.documentation_pages():
        if file.generated_by is not None:
            continue
        for match in LINK.finditer(file.content_string):
            linked = _repo_path(file.src_uri, match.group(2), docs_dir)
            if linked is not None and linked not in PAGES:
                wanted.add(linked)
    for repo_path in sorted(wanted):
        files.append(
            File.generated(config, _site_uri(repo_path), abs_src_path=str(ROOT / repo_path))
        )
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.generated_by is not None:
        return markdown
    docs_dir = Path(config.docs_dir).resolve()
    here = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match[str]) -> str:
        repo_path = _repo_path(page.file.src_uri, match.group(2), docs_dir)
        if repo_path is None:
            return match.group(0)
        target = posixpath.relpath(_site_uri(repo_path), here or ".")
        rest = "".join(group or "" for group in match.groups()[2:])
        return f"{match.group(1)}{target}{rest})"

    return LINK.sub(rewrite, markdown)
