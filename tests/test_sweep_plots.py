"""The sweep's figures with failed trials: left out as they are from the ranking, and a sweep
whose every trial failed still gets its files (saying so) rather than an error."""

from __future__ import annotations

import math
from pathlib import Path

from lrkit.plots.sweep import plot_accuracy_vs_iteration, plot_heatmap, shared_lr
from lrkit.sweep.store import StoredTrial
from lrkit.training.loop import CurvePoint

CURVE = (CurvePoint(0, 0.0, math.nan, 2.3, 0.1), CurvePoint(10, 0.5, 1.0, 0.9, 0.7))


def trial(batch_size: int, lr: float, status: str) -> StoredTrial:
    done = status == "done"
    return StoredTrial(
        "default",
        batch_size,
        lr,
        0,
        0,
        status,
        0.1,
        None,
        0.9 if done else None,
        0.7 if done else None,
        0.7 if done else None,
        None,
        CURVE if done else CURVE[:1],
        None if done else "RuntimeError: boom",
    )


def test_the_shared_lr_is_one_that_trained_at_several_batch_sizes() -> None:
    trials = [trial(b, 0.05, "failed") for b in (16, 32)] + [
        trial(b, 0.1, "done") for b in (16, 32)
    ]
    assert shared_lr(trials) == 0.1
    assert shared_lr([trial(b, 0.05, "failed") for b in (16, 32)]) is None


def test_a_sweep_whose_every_trial_failed_still_gets_its_figures(tmp_path: Path) -> None:
    failed = [trial(16, 0.1, "failed"), trial(32, 0.1, "failed")]
    plot_accuracy_vs_iteration(failed, tmp_path / "curves.svg")
    plot_heatmap(failed, tmp_path / "heatmap.svg")
    for name in ("curves.svg", "heatmap.svg"):
        assert "every one failed" in (tmp_path / name).read_text()


def test_a_failed_trial_draws_no_curve(tmp_path: Path) -> None:
    plot_accuracy_vs_iteration(
        [trial(16, 0.1, "done"), trial(16, 0.3, "failed")], tmp_path / "with-failed.svg"
    )
    with_failed = (tmp_path / "with-failed.svg").read_text()
    assert "lr 0.3" not in with_failed and "lr 0.1" in with_failed
