"""`lrkit reproduce --bs-schedule`: a step decay of the lr against the matching batch-size
increase (Smith et al. 2018), its plan, its update counts, resuming and its bad input."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from cli_run import run
from lrkit.errors import LrkitValueError
from lrkit.experiments.batch_size_demo import milestones_for, plan_demo, whole_epochs


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    return tmp_path


def sample_train_size() -> int:
    """Training examples of the bundled sample after the default 1/12 validation split."""
    from lrkit.workload import load_workload

    work = load_workload("mnist-mlp", None, None, None, 1 / 12, notify=lambda m: None)
    return len(work.train)


def test_milestones_sit_at_a_third_and_two_thirds_in_whole_epochs() -> None:
    assert milestones_for(30) == (10, 20)
    assert milestones_for(10) == (3, 7)
    assert milestones_for(3) == (1, 2)
    assert milestones_for(2) == (1,)
    for epochs in range(2, 60):
        steps = milestones_for(epochs)
        assert all(0 < m < epochs for m in steps)


def test_plan_matches_the_decay_with_the_batch_growth() -> None:
    plan = plan_demo(30.0, 22_000)
    assert plan.epochs == 30 and plan.milestones == (10, 20)
    decay, increase = plan.arms
    per_epoch = math.ceil(22_000 / 16)
    assert decay.schedule == f"multistep:gamma=0.2,milestones={10 * per_epoch},{20 * per_epoch}"
    assert decay.batch_size_schedule is None and decay.batch_sizes == (16,)
    assert decay.lrs == pytest.approx((0.5, 0.1, 0.02))
    assert increase.schedule is None and increase.lrs == (0.5,)
    assert increase.batch_size_schedule == "factor=5,milestones=10,20"
    assert increase.batch_sizes == (16, 80, 400)
    # The noise scale lr / B is the same in every phase.
    for lr, size in zip(decay.lrs, increase.batch_sizes, strict=True):
        assert lr / 16 == pytest.approx(0.5 / size)
    assert {decay.sweep, increase.sweep} == {"bs-decay", "bs-increase"}


@pytest.mark.parametrize("epochs", [1.0, 2.5, 0.5, math.inf])
def test_fractional_or_too_few_epochs_are_refused(epochs: float) -> None:
    with pytest.raises(LrkitValueError, match="whole number >= 2"):
        whole_epochs(epochs)


def test_a_batch_larger_than_the_data_is_refused() -> None:
    with pytest.raises(LrkitValueError, match="grows the batch to 400, more than the 300"):
        plan_demo(30.0, 300)


def test_quick_demo_counts_updates_in_closed_form_and_resumes(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["reproduce", "--bs-schedule", "--quick", "--json", "bs.json"], capsys)
    assert code == 0, err
    folder = workdir / "lrkit-reproduce"
    assert (folder / "bs-schedule.png").stat().st_size > 20_000
    summary = (folder / "bs-schedule.md").read_text()
    assert "bs-schedule.png" in summary and "updates" in summary
    assert err.count("run now") == 2

    # 2 epochs, one milestone at epoch 1: the decay arm takes ceil(n/16) updates an epoch
    # throughout; the increase arm ceil(n/16) in epoch 0 and ceil(n/80) in epoch 1.
    n = sample_train_size()
    assert n == 5500
    decay_updates = 2 * math.ceil(n / 16)
    increase_updates = math.ceil(n / 16) + math.ceil(n / 80)
    assert (decay_updates, increase_updates) == (688, 413)

    document = json.loads((workdir / "bs.json").read_text())
    assert document["milestones"] == [1] and document["epochs"] == 2
    decay, increase = document["arms"]
    assert (decay["name"], increase["name"]) == ("decay", "increase")
    assert decay["updates"] == decay_updates
    assert increase["updates"] == increase_updates
    assert document["update_ratio"] == pytest.approx(increase_updates / decay_updates)
    assert increase["updates"] < decay["updates"]
    # The same examples: both arms trained exactly 2 epochs of the n examples.
    assert decay["epochs"] == increase["epochs"] == 2.0
    assert decay["examples"] == increase["examples"] == 2 * n
    assert decay["schedule"] == f"multistep:gamma=0.2,milestones={math.ceil(n / 16)}"
    assert decay["batch_sizes"] == [16] and increase["batch_sizes"] == [16, 80]
    for arm in (decay, increase):
        assert arm["status"] == "done"
        assert 0.5 < arm["final_val_accuracy"] <= 1.0
        assert 0.5 < arm["test_accuracy"] <= 1.0
    assert f"{decay_updates}" in out and f"{increase_updates}" in out
    assert f"{increase_updates / decay_updates:.3f}x" in out

    # Before the milestone the arms are the same run: same seed, lr, batch and data order.
    db = sqlite3.connect(folder / "bs-schedule.sqlite")
    curves = {
        name: db.execute(
            "SELECT p.iteration, p.epoch, p.val_accuracy FROM points p "
            "JOIN trials t ON t.id = p.trial_id JOIN sweeps s ON s.id = t.sweep_id "
            "WHERE s.name = ? ORDER BY p.iteration",
            (name,),
        ).fetchall()
        for name in ("bs-decay", "bs-increase")
    }
    before = db.execute("SELECT id, finished_at, seconds FROM trials ORDER BY id").fetchall()
    db.close()
    first = [p for p in curves["bs-decay"] if p[1] <= 1.0]
    assert first and first == [p for p in curves["bs-increase"] if p[1] <= 1.0]
    assert curves["bs-decay"][-1][:2] == (decay_updates, 2.0)
    assert curves["bs-increase"][-1][:2] == (increase_updates, 2.0)

    # Resumed: nothing trains again, the same table comes back.
    code, again, err = run(["reproduce", "--bs-schedule", "--quick"], capsys)
    assert code == 0, err
    assert "run now" not in err and err.count("from ") >= 2
    assert again == out
    db = sqlite3.connect(folder / "bs-schedule.sqlite")
    assert db.execute("SELECT id, finished_at, seconds FROM trials ORDER BY id").fetchall() == (
        before
    )
    db.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "2.5"], "--epochs must be a whole number >= 2 with --bs-schedule, got 2.5"),
        (["--epochs", "1"], "--epochs must be a whole number >= 2 with --bs-schedule, got 1"),
        (["--repeats", "2"], "--repeats must be 1 with --bs-schedule"),
        (["--engine", "turbo"], "--engine must be one of"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    workdir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["reproduce", "--bs-schedule", *args], capsys)
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (workdir / "lrkit-reproduce").exists()
