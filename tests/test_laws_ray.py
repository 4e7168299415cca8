"""``lrkit laws --engine ray``: the ladder's runs on a local Ray instance are the ones the
sequential engine trains (needs the ray extra; marked ray, in make test)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'lrkit[ray]')")

FAMILY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def mlp(width):
        return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, 2))

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(600, 8, generator=g)
        y = (x[:, 0] - x[:, 1] > 0).long()
        return {"train": (x[:500], y[:500]), "val": (x[500:], y[500:])}
    """
)


def test_a_ladder_on_ray_trains_what_the_sequential_engine_does(tmp_path: Path) -> None:
    (tmp_path / "raylaws.py").write_text(FAMILY)
    args = [sys.executable, "-m", "lrkit", "laws", "--model", "raylaws:mlp"]
    args += ["--data", "raylaws:make_data", "--widths", "8,16,32,64", "--lr", "0.02"]
    args += ["--octaves", "1", "--per-octave", "1", "--batch-size", "50", "--epochs", "1"]
    for engine in ("ray", "sequential"):
        done = subprocess.run(
            [*args, "--engine", engine, "--store", f"{engine}.sqlite", "--json", f"{engine}.json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    on_ray = json.loads((tmp_path / "ray.json").read_text())
    local = json.loads((tmp_path / "sequential.json").read_text())
    assert [r["runs"] for r in on_ray["rungs"]] == [r["runs"] for r in local["rungs"]]
    assert on_ray["fit"]["exponents"] == local["fit"]["exponents"]
