"""``lrkit.laws.ladder``: the grid by hand, a width ladder run into a store (one sweep per
width, resumed without repeating a run), the grid widened where the band touches its end."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.laws import FitSettings, fit_law
from lrkit.laws.ladder import MAX_WIDENINGS, LadderPlan, Rung, lr_grid, run_ladder, widen
from lrkit.laws.optimum import repeat_tolerance
from lrkit.laws.points import Ladder
from lrkit.sweep.definition import SweepDefinition
from lrkit.sweep.engines.registry import EngineRequest
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


def widths_only(widths: tuple[int, ...] | list[int]) -> Ladder:
    return Ladder(tuple(widths), (500,), (1.0,), (32,))


def ladder(store: Store, widths: tuple[int, ...]) -> tuple[Rung, ...]:
    return run_ladder(
        family,
        workload(),
        store,
        LadderPlan(widths_only(widths), DEFINITION, center_lr=0.01, octaves=1, per_octave=2),
        engine=EngineRequest("sequential"),
    )


def test_a_ladder_runs_each_width_into_the_store_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "laws.sqlite"
    widths = (8, 16, 32, 64)
    with Store.open(path) as store:
        rungs = ladder(store, widths)
        names = {row.name for row in store.sweeps()}
        stored = len(store.trials())
    assert [r.size for r in rungs] == list(widths)
    assert names == {f"laws-width-{w}" for w in widths}
    assert stored == sum(len(r.lrs) for r in rungs)
    for rung in rungs:
        assert set(rung.lrs) >= set(lr_grid(0.01, 1, 2))
        assert len(rung.trials) == len(rung.lrs) and all(t.status == "done" for t in rung.trials)
        losses = dict(rung.runs)
        assert rung.optimum.best_loss == min(losses.values())
        assert rung.optimum.low <= rung.optimum.lr <= rung.optimum.high
    fit = fit_law({(float(r.size),): r.runs for r in rungs}, ["width"], FitSettings(bootstrap=200))
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
            workload(),
            store,
            LadderPlan(widths_only([16]), DEFINITION, center_lr=1e-6, octaves=1, per_octave=2),
            engine=EngineRequest("sequential"),
        )
    assert rung.widenings == MAX_WIDENINGS
    assert max(rung.lrs) == pytest.approx(1e-6 * 2 ** (1 + MAX_WIDENINGS))
    assert min(rung.lrs) == pytest.approx(0.5e-6) and rung.optimum.at_edge


def test_a_ladder_of_horizons_batch_sizes_and_repeats(tmp_path: Path) -> None:
    """Two horizons x two batch sizes at one width, two seeds at each lr: one named sweep per
    point, every lr's loss the mean of its repeats, each band widened to their noise."""
    shape = Ladder((8,), (500,), (0.5, 1.0), (16, 32))
    with Store.open(tmp_path / "h.sqlite") as store:
        rungs = run_ladder(
            family,
            workload(),
            store,
            LadderPlan(shape, DEFINITION, center_lr=0.01, octaves=1, per_octave=1, repeats=2),
            engine=EngineRequest("sequential"),
        )
        rows = store.sweeps()
    assert {row.name for row in rows} == {
        f"laws-width-8-epochs-{e:g}-batch-{b}" for e in (0.5, 1.0) for b in (16, 32)
    }
    assert [(r.point.epochs, r.point.batch_size) for r in rungs] == [
        (0.5, 16),
        (0.5, 32),
        (1.0, 16),
        (1.0, 32),
    ]
    assert {row.name: row.definition["epochs"] for row in rows} == {
        f"laws-width-8-epochs-{e:g}-batch-{b}": e for e in (0.5, 1.0) for b in (16, 32)
    }
    for rung in rungs:
        assert len(rung.trials) == 2 * len(rung.lrs)
        assert {t.repeat for t in rung.trials} == {0, 1}
        for (lr, mean), (lr_again, losses) in zip(rung.runs, rung.repeats, strict=True):
            assert lr == lr_again and len(losses) == 2 and mean == pytest.approx(sum(losses) / 2)
        assert rung.optimum.tolerance == pytest.approx(repeat_tolerance(rung.repeats))
        assert rung.to_json()["repeats"]
        assert rung.parameters == 8 * 8 + 8 + 8 * 2 + 2


def test_an_examples_ladder_trains_on_the_first_n(tmp_path: Path) -> None:
    """--examples 200,400: each point's runs train on the first n training examples, named
    and recorded as such."""
    shape = Ladder((8,), (200, 400), (1.0,), (32,))
    with Store.open(tmp_path / "e.sqlite") as store:
        rungs = run_ladder(
            family,
            workload(),
            store,
            LadderPlan(shape, DEFINITION, center_lr=0.01, octaves=1, per_octave=1),
            engine=EngineRequest("sequential"),
        )
        rows = {row.name: row for row in store.sweeps()}
    assert {n: row.definition["data"] for n, row in rows.items()} == {
        "laws-width-8-examples-200": "toy[:200]",
        "laws-width-8-examples-400": "toy[:400]",
    }
    assert [r.point.examples for r in rungs] == [200, 400]
    assert [r.point.seen for r in rungs] == [200.0, 400.0]
    # Fewer examples, fewer steps: the iteration count at the end is the first n's.
    for rung in rungs:
        last = max(p.iteration for p in rung.trials[0].points)
        assert last == math.ceil(rung.point.examples / 32)


def narrow(width: int) -> nn.Module:
    """A small ReLU net whose range test moves with its init (0.17, 0.031, 0.013 at seeds
    0, 1, 2 on ``workload()`` with batch 50)."""
    return nn.Sequential(
        nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2)
    )


def test_the_range_test_centre_does_not_depend_on_what_ran_before() -> None:
    """The grid's centre is the range test of the seed-0 model: the same whatever the global
    RNG held (it once took the init from it: a second family's centre moved 5x), and the
    caller's RNG is left as it was."""
    from lrkit.advise.settings import AdviseSettings
    from lrkit.laws.driver import range_test_center

    def centre(factory: Callable[[int], nn.Module] = narrow) -> float:
        race = AdviseSettings(epochs=1.0, batch_size=50, optimizer="adam", momentum=0.9)
        return range_test_center(factory, 4, workload(), race)

    inits = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        net = narrow(4)
        inits.append(centre(lambda size, net=net: net))
    assert len(set(inits)) == 3  # (so the init matters here)
    torch.manual_seed(1)
    assert centre() == inits[0]
    torch.manual_seed(2)
    torch.rand(1000)
    state = torch.get_rng_state()
    assert centre() == inits[0]
    assert torch.equal(torch.get_rng_state(), state)
