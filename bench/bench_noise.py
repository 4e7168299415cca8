"""The cost of measuring the gradient noise scale: ``lrkit noise``'s defaults on the textbook's
network (5 epochs at batch 16, a measurement every quarter epoch on 2,048 examples) against
the same training without measurements, for each estimator.

Usage: python bench/bench_noise.py [--data-dir DIR] [--epochs 5]
Writes bench/results/bench_noise.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lrkit.noise.tracking import NoiseSettings, track_noise_scale
from lrkit.training.loop import TrialPlan, train_trial
from lrkit.training.optimizers import make_optimizer
from lrkit.workload import Workload, load_workload
from machine import machine

RESULTS = Path(__file__).parent / "results"


def plain(work: Workload, settings: NoiseSettings) -> float:
    """Seconds of the same training with no measurements (the checks' evaluations kept)."""
    assert work.val is not None
    model = work.make_model(settings.seed)
    optimizer = make_optimizer("sgd", model, settings.lr)
    plan = TrialPlan(settings.lr, settings.batch_size, settings.epochs, settings.measure_every, 0)
    started = time.perf_counter()
    train_trial(model, optimizer, work.loss_fn, work.train, work.val, None, plan)  # type: ignore[arg-type]
    return time.perf_counter() - started


def measured(work: Workload, settings: NoiseSettings) -> dict[str, object]:
    assert work.val is not None
    model = work.make_model(settings.seed)
    optimizer = make_optimizer("sgd", model, settings.lr)
    started = time.perf_counter()
    run = track_noise_scale(model, optimizer, work.loss_fn, work.train, work.val, settings)  # type: ignore[arg-type]
    return {
        "seconds": time.perf_counter() - started,
        "measurements": len(run.points),
        "critical_batch_size": run.critical_batch_size,
        "b_simple_end": run.points[-1].b_simple,
        "b_simple_end_stderr": run.points[-1].b_simple_stderr,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--epochs", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_noise.json")
    args = parser.parse_args()
    work = load_workload("mnist-mlp", None, args.data_dir, None, 1 / 12, notify=lambda m: None)
    baseline = plain(work, NoiseSettings(epochs=args.epochs))
    rows = {}
    for estimator in ("per-example", "two-batch"):
        settings = NoiseSettings(epochs=args.epochs, estimator=estimator)
        rows[estimator] = measured(work, settings)
    print(f"lrkit noise defaults, {args.epochs:g} epochs, {torch.get_num_threads()} threads")
    print(f"{'run':<22} {'wall s':>7} {'per measurement ms':>19} {'B_crit':>8}")
    print(f"{'training alone':<22} {baseline:7.1f}")
    for name, row in rows.items():
        seconds = float(row["seconds"])  # type: ignore[arg-type]
        count = int(row["measurements"])  # type: ignore[call-overload]
        each = 1000 * (seconds - baseline) / count
        row["ms_per_measurement"] = each
        print(f"{name:<22} {seconds:7.1f} {each:19.0f} {float(row['critical_batch_size']):8.0f}")  # type: ignore[arg-type]
    document = {
        "benchmark": "bench_noise",
        "machine": machine(),
        "epochs": args.epochs,
        "training_seconds": baseline,
        "estimators": rows,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
