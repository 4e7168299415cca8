"""``lrkit.laws.branching``: a ladder of horizons branched off one trunk stores, bitwise, what
training each horizon from scratch stores; it trains fewer steps (the module's formula), gives
a diverged trunk's outcome to the horizons it carries, resumes without storing anything twice,
and refuses sweeps that differ in more than their epochs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.laws.branching import Branch, branch_point, first_difference, run_branched
from lrkit.schedules import cooldown_start, cosine, wsd
from lrkit.sweep.definition import SweepDefinition, TrialKey, product_grid
from lrkit.sweep.engines.registry import EngineRequest
from lrkit.sweep.runner import SweepEvents, run_sweep
from lrkit.sweep.store import Store, StoredTrial
from lrkit.sweep.trials import SweepPlan, trial_plan
from lrkit.training.records import TrialOutcome
from lrkit.workload import Workload

CPU = torch.device("cpu")
BATCH = 20
WSD = "wsd:cooldown_fraction=0.25"


class Counted(nn.Module):
    """A small ReLU network that counts its training steps (forward passes with gradients in
    train mode; evaluation runs in eval mode without them)."""

    def __init__(self, steps: list[int]) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            self.steps[0] += 1
        return self.net(x)  # type: ignore[no-any-return]


def workload(steps: list[int], n_train: int = 160) -> Workload:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + 100, 8, generator=g)
    y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).long()
    train = TensorData(x[:n_train], y[:n_train])
    val = TensorData(x[n_train : n_train + 50], y[n_train : n_train + 50])
    test = TensorData(x[n_train + 50 :], y[n_train + 50 :])

    def make(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return Counted(steps)

    return Workload("counted", make, train, val, test, nn.CrossEntropyLoss(), "toy")


def horizons(
    epochs: Sequence[float],
    schedule: str | None = WSD,
    eval_every: float = 0.25,
    optimizer: str = "momentum",
    lrs: Sequence[float] = (0.05, 0.2),
) -> list[SweepPlan]:
    grid = product_grid(lrs, [BATCH], 1)
    return [
        SweepPlan(
            f"h{e:g}",
            SweepDefinition(
                model="tests:counted",
                data="toy",
                loss="cross_entropy",
                epochs=e,
                eval_every=eval_every,
                val_fraction=0.0,
                optimizer=optimizer,
                momentum=0.9,
                weight_decay=0.0,
                schedule=schedule,
                batch_size_schedule=None,
                seed=3,
            ),
            grid,
        )
        for e in epochs
    ]


def from_scratch(path: Path, plans: Sequence[SweepPlan], work: Workload) -> list[list[StoredTrial]]:
    with Store.open(path) as store:
        return [
            run_sweep(store, plan, work, CPU, engine=EngineRequest("sequential")) for plan in plans
        ]


def branched(
    path: Path, plans: Sequence[SweepPlan], work: Workload, events: SweepEvents | None = None
) -> list[list[StoredTrial]]:
    with Store.open(path) as store:
        return run_branched(store, plans, work, CPU, events)


def stored(trials: Sequence[Sequence[StoredTrial]]) -> list[list[str]]:
    """Every stored field but the wall time, as text: repr round-trips a float exactly, and
    writes nan (the first point's training loss) as itself, so equal text is bitwise equal."""
    return [[repr(replace(t, seconds=None)) for t in plan] for plan in trials]


def test_the_first_difference_of_two_schedules() -> None:
    trunk = wsd(0.1, 32, 0.25)
    assert first_difference(trunk, wsd(0.1, 8, 0.25), 8) == cooldown_start(8, 0.25) + 1
    assert first_difference(trunk, wsd(0.1, 16, 0.25), 16) == cooldown_start(16, 0.25) + 1
    assert first_difference(trunk, trunk, 32) == 32
    assert first_difference(cosine(0.1, 32), cosine(0.1, 8), 8) == 1
    assert first_difference(None, None, 8) == 8


def test_branch_points_fall_on_the_trunks_checks() -> None:
    """160 examples in batches of 20: 8 iterations an epoch, a check every 2. WSD horizons of
    1, 2 and 4 epochs leave the constant rate after 6, 12 and 24 iterations."""
    plans = horizons((1.0, 2.0, 4.0))
    key = TrialKey(BATCH, 0.05, 0)
    trunk, *_ = (trial_plan(p.definition, key, 160) for p in reversed(plans))
    points = [branch_point(trunk, trial_plan(p.definition, key, 160), 160) for p in plans]
    assert points == [Branch(6, 0.75, 8), Branch(12, 1.5, 16), Branch(32, 4.0, 32)]
    # Checks every 0.3 epochs (iterations 3, 5, 8, 10, ...): the 1-epoch horizon leaves the
    # constant rate at 7 and branches at the check before, 5.
    (short, long) = horizons((1.0, 4.0), eval_every=0.3)
    at = branch_point(
        trial_plan(long.definition, key, 160), trial_plan(short.definition, key, 160), 160
    )
    assert at == Branch(5, 0.625, 8)


@pytest.mark.parametrize(
    ("schedule", "eval_every", "epochs", "optimizer", "n_train"),
    [
        (WSD, 0.25, (1.0, 2.0, 4.0), "momentum", 160),
        # checks that fall between branch points, partial batches, fractional epochs
        ("wsd:cooldown_fraction=0.2,cooldown=1-sqrt", 0.3, (0.75, 1.5, 3.0), "adam", 170),
        # no schedule: each horizon branches at the trunk's last check before its end
        (None, 0.3, (0.75, 1.5, 3.0), "sgd", 170),
    ],
)
def test_each_horizon_stores_what_training_it_from_scratch_stores(
    tmp_path: Path,
    schedule: str | None,
    eval_every: float,
    epochs: tuple[float, ...],
    optimizer: str,
    n_train: int,
) -> None:
    plans = horizons(epochs, schedule, eval_every, optimizer)
    steps = [0]
    work = workload(steps, n_train)
    got = branched(tmp_path / "branched.sqlite", plans, work)
    branched_steps, steps[0] = steps[0], 0
    want = from_scratch(tmp_path / "scratch.sqlite", plans, work)
    assert stored(got) == stored(want)
    assert all(t.status == "done" and len(t.points) > 2 for plan in got for t in plan)
    assert branched_steps < steps[0]


def test_the_saving_is_the_branch_points_of_the_shorter_horizons(tmp_path: Path) -> None:
    """Horizons of 1, 2 and 4 epochs of I = 8 iterations, cooldown fraction f = 0.25: from
    scratch 7I = 56 iterations a key, branched 4I + f (I + 2I) = 38 (saved: b = 6 + 12)."""
    plans = horizons((1.0, 2.0, 4.0))
    steps = [0]
    branched(tmp_path / "branched.sqlite", plans, workload(steps))
    assert steps[0] == 2 * 38
    steps[0] = 0
    from_scratch(tmp_path / "scratch.sqlite", plans, workload(steps))
    assert steps[0] == 2 * 56


def test_without_a_shared_prefix_every_horizon_trains_from_scratch(tmp_path: Path) -> None:
    """Cosine schedules of different lengths differ from iteration 1 on: branch point 0."""
    plans = horizons((1.0, 2.0, 4.0), schedule="cosine")
    steps = [0]
    work = workload(steps)
    got = branched(tmp_path / "branched.sqlite", plans, work)
    assert steps[0] == 2 * 56
    assert stored(got) == stored(from_scratch(tmp_path / "scratch.sqlite", plans, work))


def test_a_diverged_trunk_diverges_the_horizons_it_carries(tmp_path: Path) -> None:
    """At lr 1e4 the loss overflows within the first epoch; at lr 30 late in the trunk, after
    the shorter horizons have branched. Every horizon's status, diverged iteration and curve
    are those of its run from scratch."""
    plans = horizons((1.0, 2.0, 4.0), lrs=(30.0, 1e4))
    work = workload([0])
    got = branched(tmp_path / "branched.sqlite", plans, work)
    assert stored(got) == stored(from_scratch(tmp_path / "scratch.sqlite", plans, work))
    statuses = {(plan[0].sweep, t.lr): t.status for plan in got for t in plan}
    assert statuses[("h4", 30.0)] == "diverged" and statuses[("h4", 1e4)] == "diverged"
    assert statuses[("h1", 30.0)] == "done"
    diverged = [t for plan in got for t in plan if t.status == "diverged"]
    assert all(t.diverged_iteration is not None and t.test_accuracy is None for t in diverged)


def test_a_second_run_trains_and_stores_nothing(tmp_path: Path) -> None:
    plans = horizons((1.0, 2.0, 4.0))
    steps, started = [0], []
    events = SweepEvents(on_trial_start=lambda key, i, n: started.append((key, i, n)))
    path = tmp_path / "branched.sqlite"
    first = branched(path, plans, workload(steps), events)
    assert [(i, n) for _, i, n in started] == [(i, 6) for i in range(6)]
    steps[0], started[:] = 0, []
    again = branched(path, plans, workload(steps), events)
    assert steps[0] == 0 and started == [] and stored(again) == stored(first)
    with Store.open(path) as store:
        assert len(store.trials()) == 6
        # a plain sweep of a horizon finds its trials finished
        run_sweep(store, plans[0], workload(steps), CPU, engine=EngineRequest("sequential"))
    assert steps[0] == 0


def test_only_the_missing_horizons_are_trained_and_stored(tmp_path: Path) -> None:
    """With the 2- and 4-epoch horizons stored, the trunk of each key runs only up to the
    1-epoch horizon's branch point (6 iterations), which trains its last 2 from there."""
    plans = horizons((1.0, 2.0, 4.0))
    steps = [0]
    work = workload(steps)
    path = tmp_path / "partial.sqlite"
    from_scratch(path, plans[1:], work)
    steps[0] = 0
    ended: list[tuple[TrialKey, TrialOutcome]] = []
    events = SweepEvents(on_trial_end=lambda key, outcome: ended.append((key, outcome)))
    got = branched(path, plans, work, events)
    assert steps[0] == 2 * (6 + 2) and len(ended) == 2
    with Store.open(path) as store:
        assert len(store.trials()) == 6
    assert stored(got) == stored(from_scratch(tmp_path / "scratch.sqlite", plans, work))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedule": "cosine"}, "differs from 'h1' in schedule"),
        ({"seed": 4, "optimizer": "adam"}, "in optimizer, seed"),
        ({"grid": product_grid([0.05], [BATCH], 1)}, "in grid"),
        ({"epochs": 1.0}, "two sweeps have epochs 1.0"),
        ({"name": "h1"}, "two sweeps have name h1"),
    ],
)
def test_plans_that_differ_in_more_than_epochs_are_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    short, long = horizons((1.0, 2.0))
    fields = {k: v for k, v in change.items() if k not in ("grid", "name")}
    long = replace(
        long,
        name=str(change.get("name", long.name)),
        definition=replace(long.definition, **fields),  # type: ignore[arg-type]
        grid=change.get("grid", long.grid),  # type: ignore[arg-type]
    )
    path = tmp_path / "refused.sqlite"
    with Store.open(path) as store:
        with pytest.raises(LrkitValueError, match=message):
            run_branched(store, [short, long], workload([0]), CPU)
        assert store.sweeps() == []
