"""Sweep speed: one 30-epoch trial at batch 16, 32 and 128, and the whole of
``lrkit reproduce`` (the textbook's grids, 30 epochs, 1 repeat).

Usage: python bench/bench_sweep.py [--data-dir DIR] [--epochs 30] [--skip-reproduce]
Writes bench/results/bench_sweep.json and, from the reproduction, its summary and figures
into bench/results/reproduce/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.engines.registry import EngineRequest
from lrkit.sweep.runner import run_sweep
from lrkit.sweep.store import Store
from lrkit.sweep.trials import SweepPlan
from lrkit.workload import load_workload
from machine import machine

RESULTS = Path(__file__).parent / "results"


def one_trial(data_dir: Path | None, batch_size: int, epochs: float) -> dict[str, float]:
    work = load_workload("mnist-mlp", None, data_dir, None, 1 / 12, notify=lambda m: None)
    definition = SweepDefinition(
        "mnist-mlp",
        work.data_name,
        "cross-entropy",
        epochs,
        0.5,
        1 / 12,
        "sgd",
        0.0,
        0.0,
        None,
        None,
        0,
    )
    plan = SweepPlan("bench", definition, (TrialKey(batch_size, 0.5, 0),))
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "s.sqlite") as store:
        started = time.perf_counter()
        # The plain loop, one trial: the vectorized engine's figures are bench_engine.py's.
        (trial,) = run_sweep(
            store, plan, work, torch.device("cpu"), engine=EngineRequest("sequential")
        )
        wall = time.perf_counter() - started
    steps = int(trial.points[-1].iteration)
    return {
        "batch_size": batch_size,
        "wall_seconds": wall,
        "steps": steps,
        "us_per_step": 1e6 * wall / steps,
        "final_val_accuracy": trial.final_val_accuracy or 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--epochs", type=float, default=30.0)
    parser.add_argument("--skip-reproduce", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_sweep.json")
    args = parser.parse_args()

    trials = [one_trial(args.data_dir, b, args.epochs) for b in (16, 32, 128)]
    print(
        f"one {args.epochs:g}-epoch trial of mnist-mlp at lr 0.5, {torch.get_num_threads()} threads"
    )
    print(f"{'batch':>5} {'wall s':>7} {'steps':>7} {'us/step':>8} {'final val acc':>14}")
    for t in trials:
        print(
            f"{t['batch_size']:>5} {t['wall_seconds']:7.1f} {t['steps']:7d} "
            f"{t['us_per_step']:8.0f} {t['final_val_accuracy']:14.4f}"
        )
    document: dict[str, object] = {
        "benchmark": "bench_sweep",
        "machine": machine(),
        "epochs": args.epochs,
        "trials": trials,
    }

    if not args.skip_reproduce:
        out = RESULTS / "reproduce"
        command = [
            sys.executable,
            "-m",
            "lrkit",
            "reproduce",
            "--out",
            str(out),
            "--store",
            str(Path(tempfile.mkdtemp()) / "reproduce.sqlite"),
            "--epochs",
            f"{args.epochs:g}",
            "--json",
            str(out / "summary.json"),
        ]
        if args.data_dir is not None:
            command += ["--data-dir", str(args.data_dir)]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        print(f"lrkit reproduce ({args.epochs:g} epochs, 1 repeat): {wall:.1f} s wall")
        print(result.stdout)
        document["reproduce_wall_seconds"] = wall
        document["reproduce_output"] = result.stdout
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
