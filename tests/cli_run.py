"""Running the CLI in-process, as the CLI tests do."""

from __future__ import annotations

import pytest

from lrkit.cli.app import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``lrkit ARGS``."""
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err
