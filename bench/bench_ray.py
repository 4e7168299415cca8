"""A sweep on local Ray against the same sweep on the local vectorized engine: the overhead
Ray adds per trial (task submission, the object store, fresh worker processes importing
torch) once its start-up is paid.

The sweep: mnist-mlp on the MNIST files, lrs 0.1, 0.3, 0.5, 0.7 x batch sizes 32 and 128,
2 epochs (8 trials, 2 stacks), plain SGD, a check every half epoch.

Usage: python bench/bench_ray.py [--data-dir DIR] [--epochs 2]
Writes bench/results/bench_ray.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import ray
import torch

from lrkit.sweep.definition import SweepDefinition, product_grid
from lrkit.sweep.engines.registry import EngineRequest
from lrkit.sweep.runner import run_sweep
from lrkit.sweep.store import Store
from lrkit.sweep.trials import SweepPlan
from lrkit.workload import Workload, load_workload
from machine import machine

RESULTS = Path(__file__).parent / "results"


def timed_sweep(work: Workload, plan: SweepPlan, engine: str) -> float:
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "s.sqlite") as store:
        started = time.perf_counter()
        run_sweep(store, plan, work, torch.device("cpu"), engine=EngineRequest(engine))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_ray.json")
    args = parser.parse_args()
    work = load_workload("mnist-mlp", None, args.data_dir, None, 1 / 12, notify=lambda m: None)
    definition = SweepDefinition(
        "mnist-mlp",
        work.data_name,
        "cross-entropy",
        args.epochs,
        0.5,
        1 / 12,
        "sgd",
        0.0,
        0.0,
        None,
        None,
        0,
    )
    grid = product_grid((0.1, 0.3, 0.5, 0.7), (32, 128), 1)
    plan = SweepPlan("bench", definition, grid)
    local = timed_sweep(work, plan, "vectorized")
    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    start_up = time.perf_counter() - started
    on_ray = timed_sweep(work, plan, "ray")  # uses the running instance
    second = timed_sweep(work, plan, "ray")  # workers warm
    ray.shutdown()
    trials = len(grid)
    rows = {
        "local vectorized (2 worker processes)": local,
        "ray, first sweep (fresh workers)": on_ray,
        "ray, second sweep (warm workers)": second,
    }
    print(f"{trials} trials, {args.epochs:g} epochs; ray.init took {start_up:.1f} s")
    print(f"{'run':<40} {'wall s':>7} {'overhead per trial s':>21}")
    for name, seconds in rows.items():
        print(f"{name:<40} {seconds:7.1f} {(seconds - local) / trials:21.2f}")
    document = {
        "benchmark": "bench_ray",
        "machine": machine(),
        "ray": ray.__version__,
        "epochs": args.epochs,
        "trials": trials,
        "ray_init_seconds": start_up,
        "seconds": rows,
        "overhead_per_trial_seconds": {k: (v - local) / trials for k, v in rows.items()},
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
