"""``lrkit.laws.ladder``: the grid by hand, a width ladder run into a store (one sweep per
width, resumed without repeating a run), the grid widened where the band touches its end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.laws import fit_law
from lrkit.laws.ladder import MAX_WIDENINGS, Rung, lr_grid, run_ladder, widen
from lrkit.sweep.definition import SweepDefinition
from lrkit.sweep.store import Store
from lrkit.workload import Workload


def test_the_grid_by_hand() -> None:
    grid = lr_grid(0.01, octaves=1, per_octave=2)
    assert grid == pytest.approx([0.005, 0.01 / math.sqrt(2), 0.01, 0.01 * math.sqrt(2), 0.02])
    assert len(lr_grid(0.01)) == 17  # two octaves each side, four points an octave
    up = widen(grid, upward=True, per_octave=2)
    assert up[-2:] == pytest.approx((0.02 * math.sqrt(2), 0.04)) and up[:5] == grid
    down = widen(grid, upward=False, per_octave=2)
    assert down[:2] == pytest.approx((0.0025, 0.005 / math.sqrt(2)))


def workload() -> Workload:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 8, generator=g)
    y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).long()
    train, val = TensorData(x[:500], y[:500]), TensorData(x[500:], y[500:])
    return Workload(
        "ladder-test", lambda seed: nn.Linear(8, 2), train, val, None, nn.CrossEntropyLoss(), "toy"
    )


def family(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, 2))


DEFINITION = SweepDefinition(
    model="tests:family",
    data="toy",
    loss="cross_entropy",
    epochs=1.0,
    eval_every=0.5,
    val_fraction=0.0,
    optimizer="adam",
    momentum=0.9,
    weight_decay=0.0,
    schedule=None,
    batch_size_schedule=None,
    seed=0,
)


def ladder(store: Store, widths: tuple[int, ...]) -> tuple[Rung, ...]:
    return run_ladder(
        family,
        widths,
        workload(),
        DEFINITION,
        store,
        batch_size=32,
        center_lr=0.01,
        octaves=1,
        per_octave=2,
        engine="sequential",
    )


def test_a_ladder_runs_each_width_into_the_store_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "laws.sqlite"
    widths = (8, 16, 32, 64)
    with Store.open(path) as store:
        rungs = ladder(store, widths)
        names = {row.name for row in store.sweeps()}
        stored = len(store.trials())
    assert [r.width for r in rungs] == list(widths)
    assert names == {f"laws-width-{w}" for w in widths}
    assert stored == sum(len(r.lrs) for r in rungs)
    for rung in rungs:
        assert set(rung.lrs) >= set(lr_grid(0.01, 1, 2))
        assert len(rung.trials) == len(rung.lrs) and all(t.status == "done" for t in rung.trials)
        losses = dict(rung.runs)
        assert rung.optimum.best_loss == min(losses.values())
        assert rung.optimum.low <= rung.optimum.lr <= rung.optimum.high
    fit = fit_law({(float(r.width),): r.runs for r in rungs}, ["width"], bootstrap=200)
    assert math.isfinite(fit.exponents[0])
    # Resumed: the same rungs, no run repeated.
    with Store.open(path) as store:
        again = ladder(store, widths)
        assert len(store.trials()) == stored
    assert [r.runs for r in again] == [r.runs for r in rungs]


def test_the_grid_grows_where_the_band_touches_its_top(tmp_path: Path) -> None:
    """Far too low a centre: every rung's best run is its grid's largest lr, so the grid
    grows upward, by at most MAX_WIDENINGS octaves."""
    with Store.open(tmp_path / "low.sqlite") as store:
        (rung,) = run_ladder(
            family,
            [16],
            workload(),
            DEFINITION,
            store,
            batch_size=32,
            center_lr=1e-6,
            octaves=1,
            per_octave=2,
            engine="sequential",
        )
    assert rung.widenings == MAX_WIDENINGS
    assert max(rung.lrs) == pytest.approx(1e-6 * 2 ** (1 + MAX_WIDENINGS))
    assert min(rung.lrs) == pytest.approx(0.5e-6) and rung.optimum.at_edge
