"""The vectorized training engine against one-trial-at-a-time training and against the
machine's floating-point limit.

1. Matmul rate: a 2048x2048 float32 matmul (2 * 2048^3 FLOP), median of several, with torch's
   default threads and with 1 thread (and on the GPU with --device cuda).
2. K=4 at batch 16: one trial with the plain loop (``train_trial``, lr 0.5) against one stack
   of 4 trials (lr 0.1, 0.3, 0.5, 0.7, same seed) with ``StackedRun``; interleaved, the order
   alternating each repeat; medians. Goal: stacked / single <= 1.5 (median of paired ratios).
3. Full grid: the textbook's 14 (batch size, lr) pairs through ``run_sweep``, sequential
   (the plain loop, one trial at a time) and vectorized, 1 repeat each, then vectorized with
   3 repeats. Goals: speed-up >= 4; vectorized wall <= 3x the floor (total FLOP / matmul
   rate); 3 repeats vectorized faster than 1 repeat sequential.
4. Peak memory of K=64 trials at batch 128, stacked, in a fresh process, against a process
   that only loads torch and the data (each peak RSS also read from a reset after loading, so
   that loading's transient copies do not hide the run's own). Goal: at most 2 GiB.

FLOP model (mnist-mlp): m = multiply-adds of one example's forward pass (784*64 + 64*16 +
16*10 = 51,360). A training step costs 6m FLOP per example (forward 2m, backward 4m, the usual
3x rule); an evaluation 2m per example. Each trial evaluates the validation set at every check
(the initial one and every eval_every epochs) and the test set once at the end. Activations,
the loss and the SGD update (O(parameters) a step) are left out.

Usage: python bench/bench_engine.py [--data-dir DIR] [--device cpu|cuda] [--epochs 30]
    [--k4-epochs 2] [--k4-repeats 3] [--memory-epochs 1] [--skip-grid] [--quick] [--out FILE]
Writes bench/results/bench_engine.json (bench_engine_cuda.json with --device cuda).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.experiments.textbook import all_pairs
from lrkit.models import build_model
from lrkit.sweep.definition import TrialKey, make_definition, pairs_grid
from lrkit.sweep.engines.registry import EngineChoice, EngineRequest
from lrkit.sweep.runner import SweepEvents, run_sweep
from lrkit.sweep.store import Store
from lrkit.sweep.trials import SweepPlan
from lrkit.training.loop import TrialOutcome, TrialPlan, train_trial
from lrkit.training.vectorized.loop import StackedRun, StackedTrial
from lrkit.workload import Workload, load_workload
from machine import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

MATMUL_SIZE = 2048
VAL_FRACTION = 1 / 12
EVAL_EVERY = 0.5
SEED = 0
K4_BATCH, K4_LRS, SINGLE_LR = 16, (0.1, 0.3, 0.5, 0.7), 0.5
GRID_REPEATS = 3
MEMORY_BATCH, MEMORY_K = 128, 64
MEMORY_LRS = tuple(0.05 + 0.95 * i / (MEMORY_K - 1) for i in range(MEMORY_K))
MEMORY_LIMIT_MIB = 2048.0
QUICK_TRAIN, QUICK_EVAL = 2000, 500
"""--quick trains on the first 2,000 training images and evaluates on 500."""

Splits = tuple[TensorData, TensorData, TensorData]
"""(train, val, test)."""


def multiply_adds(model: nn.Module) -> int:
    """m: multiply-adds of one example's forward pass, sum of in * out over the Linear layers."""
    return sum(
        layer.in_features * layer.out_features
        for layer in model.modules()
        if isinstance(layer, nn.Linear)
    )


M = multiply_adds(build_model("mnist-mlp", SEED))
TRAIN_FLOP, EVAL_FLOP = 6 * M, 2 * M
"""FLOP per example of a training step (6m) and of an evaluation (2m)."""


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a clock read after it counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def default_data_dir() -> Path | None:
    """$LRKIT_DATA_DIR, else ../shared/data/mnist beside the repository, else None (the sample
    shipped with lrkit)."""
    if os.environ.get("LRKIT_DATA_DIR"):
        return Path(os.environ["LRKIT_DATA_DIR"])
    shared = ROOT.parent / "shared" / "data" / "mnist"
    return shared if shared.is_dir() else None


def load(data_dir: Path | None, quick: bool) -> Workload:
    """mnist-mlp on MNIST, the last 1/12 of the training images for validation; with
    ``quick``, the first QUICK_TRAIN / QUICK_EVAL images of each split."""
    work = load_workload(
        "mnist-mlp", None, data_dir, None, VAL_FRACTION, notify=lambda m: print(m, file=sys.stderr)
    )
    if not quick:
        return work
    train, val, test = splits(work, torch.device("cpu"))
    return dataclasses.replace(
        work, train=train.head(QUICK_TRAIN), val=val.head(QUICK_EVAL), test=test.head(QUICK_EVAL)
    )


def splits(work: Workload, device: torch.device) -> Splits:
    assert isinstance(work.train, TensorData) and work.val is not None and work.test is not None
    return work.train.to(device), work.val.to(device), work.test.to(device)


# --- FLOP model -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Work:
    """What one trial computes: optimizer steps, examples trained on, validation checks."""

    steps: int
    examples: int
    checks: int


def trial_work(n_train: int, batch_size: int, epochs: float, eval_every: float) -> Work:
    """Steps, trained examples and checks of one trial, counted as ``train_trial`` takes them
    (batches of a fresh permutation each epoch, the last one short; a check at the start,
    whenever progress passes the next multiple of ``eval_every``, and at the end)."""
    batches = math.ceil(n_train / batch_size)
    steps = examples = 0
    checks, next_check, epoch = 1, eval_every, 0
    while True:
        for b in range(batches):
            steps += 1
            examples += min(batch_size, n_train - b * batch_size)
            progress = epoch + (b + 1) / batches
            last = progress >= epochs - 1e-9
            if progress >= next_check - 1e-9 or last:
                checks += 1
                while next_check <= progress + 1e-9:
                    next_check += eval_every
            if last:
                return Work(steps, examples, checks)
        epoch += 1


def trial_flop(work: Work, n_val: int, n_test: int) -> float:
    """6m * trained examples + 2m * (checks * n_val + n_test)."""
    return float(TRAIN_FLOP * work.examples + EVAL_FLOP * (work.checks * n_val + n_test))


def grid_flop(keys: Sequence[TrialKey], data: Splits, epochs: float) -> float:
    """The sum of ``trial_flop`` over the grid's trials."""
    train, val, test = data
    return sum(
        trial_flop(trial_work(len(train), k.batch_size, epochs, EVAL_EVERY), len(val), len(test))
        for k in keys
    )


# --- 1. Matmul rate -------------------------------------------------------------------------


def matmul_gflops(device: torch.device, threads: int | None, samples: int) -> float:
    """Median over ``samples`` of 2 n^3 / seconds for n x n float32 ``a @ b`` (n = 2048);
    on a GPU each sample times 20 matmuls between synchronisations."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        a, b, c = (torch.rand(MATMUL_SIZE, MATMUL_SIZE, device=device) for _ in range(3))
        per_sample = 1 if device.type == "cpu" else 20
        torch.mm(a, b, out=c)  # warm-up
        rates = []
        for _ in range(samples):
            sync(device)
            started = time.perf_counter()
            for _ in range(per_sample):
                torch.mm(a, b, out=c)
            sync(device)
            seconds = time.perf_counter() - started
            rates.append(2 * MATMUL_SIZE**3 * per_sample / seconds / 1e9)
        return statistics.median(rates)
    finally:
        torch.set_num_threads(previous)


def case_matmul(device: torch.device, samples: int) -> dict[str, Any]:
    """Rates on the CPU (default threads, 1 thread) and on the GPU; ``reference`` is the
    device's own (default threads on a CPU), which the other cases compare against."""
    where: list[tuple[str, int | None]] = [("cpu", torch.get_num_threads()), ("cpu", 1)]
    if device.type == "cuda":
        where.append(("cuda", None))
    rates = [
        {
            "device": name,
            "threads": threads,
            "gflops": matmul_gflops(torch.device(name), threads, samples),
        }
        for name, threads in where
    ]
    reference = rates[-1 if device.type == "cuda" else 0]["gflops"]
    return {"size": MATMUL_SIZE, "samples": samples, "rates": rates, "reference": reference}


# --- 2. K=4 at batch 16 ---------------------------------------------------------------------


def trial_plan(lr: float, batch_size: int, epochs: float) -> TrialPlan:
    return TrialPlan(lr, batch_size, epochs, EVAL_EVERY, SEED)


def run_single(
    data: Splits, epochs: float, device: torch.device
) -> tuple[float, list[TrialOutcome]]:
    """Seconds (model built, trained, checked) and [outcome] of one plain-loop trial at lr 0.5."""
    sync(device)
    started = time.perf_counter()
    model = build_model("mnist-mlp", SEED).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=SINGLE_LR)
    plan = trial_plan(SINGLE_LR, K4_BATCH, epochs)
    outcome = train_trial(model, optimizer, nn.CrossEntropyLoss(), *data, plan)
    sync(device)
    return time.perf_counter() - started, [outcome]


def run_stacked(
    data: Splits, lrs: Sequence[float], batch_size: int, epochs: float, device: torch.device
) -> tuple[float, list[TrialOutcome]]:
    """Seconds (models built, stacked, trained, checked) and outcomes of one stack of
    ``len(lrs)`` trials with the same seed."""
    sync(device)
    started = time.perf_counter()
    models = [build_model("mnist-mlp", SEED).to(device) for _ in lrs]
    trials = [StackedTrial(trial_plan(lr, batch_size, epochs)) for lr in lrs]
    outcomes = StackedRun(models, trials, nn.CrossEntropyLoss(), *data).run()
    sync(device)
    return time.perf_counter() - started, outcomes


def case_k4(
    data: Splits, epochs: float, repeats: int, device: torch.device, rate: float
) -> dict[str, Any]:
    """Median wall, us/step, achieved GFLOP/s (FLOP / median wall) and its fraction of the
    matmul rate, for the single trial and the stack; the ratio is the median over repeats of
    stacked[i] / single[i]. A short warm-up of each runs first."""
    runners: dict[str, Callable[[Splits, float], tuple[float, list[TrialOutcome]]]] = {
        "single (plain loop)": lambda d, e: run_single(d, e, device),
        f"stacked K={len(K4_LRS)} (StackedRun)": lambda d, e: run_stacked(
            d, K4_LRS, K4_BATCH, e, device
        ),
    }
    train, val, test = data
    warm_up = (train.head(8 * K4_BATCH), val.head(8 * K4_BATCH), test.head(8 * K4_BATCH))
    for runner in runners.values():
        runner(warm_up, 1.0)
    work = trial_work(len(train), K4_BATCH, epochs, EVAL_EVERY)
    times: dict[str, list[float]] = {name: [] for name in runners}
    accuracy: dict[str, float] = {}
    order = list(runners)
    for _ in range(repeats):
        for name in order:
            seconds, outcomes = runners[name](data, epochs)
            times[name].append(seconds)
            lr_05 = outcomes[0] if len(outcomes) == 1 else outcomes[K4_LRS.index(SINGLE_LR)]
            accuracy[name] = lr_05.points[-1].val_accuracy
            # The FLOP model counts the steps and checks the loop took.
            assert (lr_05.points[-1].iteration, len(lr_05.points)) == (work.steps, work.checks)
        order.reverse()
    flop = trial_flop(work, len(val), len(test))
    single, stacked = (times[name] for name in runners)
    rows = []
    for name, trials in zip(runners, (1, len(K4_LRS)), strict=True):
        wall = statistics.median(times[name])
        rows.append(
            {
                "run": name,
                "trials": trials,
                "seconds": times[name],
                "median_seconds": wall,
                "steps": work.steps,
                "us_per_step": 1e6 * wall / work.steps,
                "gflop": trials * flop / 1e9,
                "gflops": trials * flop / wall / 1e9,
                "fraction_of_matmul": trials * flop / wall / 1e9 / rate,
                "final_val_accuracy_lr_0.5": accuracy[name],
            }
        )
    return {
        "batch_size": K4_BATCH,
        "lrs": K4_LRS,
        "epochs": epochs,
        "repeats": repeats,
        "work_per_trial": dataclasses.asdict(work),
        "flop_per_trial": flop,
        "runs": rows,
        "ratio_paired_median": statistics.median(
            s / p for s, p in zip(stacked, single, strict=True)
        ),
    }


# --- 3. Full grid ---------------------------------------------------------------------------


def run_grid(
    work: Workload, engine: str, epochs: float, repeats: int, device: torch.device
) -> dict[str, Any]:
    """One ``run_sweep`` of the textbook grid into a fresh store: wall seconds, engine, workers
    and the trials' statuses."""
    definition = make_definition(
        "mnist-mlp",
        work.data_name,
        None,
        epochs,
        EVAL_EVERY,
        VAL_FRACTION,
        "sgd",
        0.0,
        0.0,
        None,
        None,
        SEED,
    )
    plan = SweepPlan("bench", definition, pairs_grid(all_pairs(), repeats))
    chosen: list[EngineChoice] = []
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "grid.sqlite") as store:
        sync(device)
        started = time.perf_counter()
        trials = run_sweep(
            store, plan, work, device, SweepEvents(on_engine=chosen.append), EngineRequest(engine)
        )
        sync(device)
        wall = time.perf_counter() - started
    return {
        "engine": chosen[0].engine,
        "workers": chosen[0].workers,
        "repeats": repeats,
        "trials": len(trials),
        "statuses": dict(Counter(t.status for t in trials)),
        "wall_seconds": wall,
        "keys": plan.grid,
    }


def case_grid(work: Workload, epochs: float, device: torch.device, rate: float) -> dict[str, Any]:
    """Sequential x1, vectorized x1, vectorized x3, each measured once. Floor = total FLOP /
    matmul rate; speed-up = sequential wall / vectorized wall (1 repeat). FLOP count every
    trial's planned work (a diverged trial stops early: the statuses say if any did)."""
    data = splits(work, torch.device("cpu"))
    runs = [
        run_grid(work, "sequential", epochs, 1, device),
        run_grid(work, "vectorized", epochs, 1, device),
        run_grid(work, "vectorized", epochs, GRID_REPEATS, device),
    ]
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    for run in runs:
        flop = grid_flop(run.pop("keys"), data, epochs)
        run["gflop"] = flop / 1e9
        run["gflops"] = flop / run["wall_seconds"] / 1e9
        run["fraction_of_matmul"] = run["gflops"] / rate
        run["floor_seconds"] = flop / 1e9 / rate
        run["wall_over_floor"] = run["wall_seconds"] / run["floor_seconds"]
    sequential, vectorized, repeated = runs
    return {
        "pairs": len(all_pairs()),
        "epochs": epochs,
        "eval_every": EVAL_EVERY,
        "runs": runs,
        "speed_up": sequential["wall_seconds"] / vectorized["wall_seconds"],
        "repeats_faster_than_sequential": repeated["wall_seconds"] < sequential["wall_seconds"],
        "workers_peak_rss_mib": workers_rss if vectorized["workers"] > 1 else None,
    }


# --- 4. Peak memory -------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Set this process's peak RSS (VmHWM) back to its current RSS (Linux: write 5 to
    /proc/self/clear_refs); False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """VmHWM of /proc/self/status (kB), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def memory_probe(
    kind: str, data_dir: Path | None, device: torch.device, epochs: float, quick: bool
) -> dict[str, Any]:
    """Run in a fresh process: import torch and load the data; reset the peak RSS, so that
    loading's transient copies do not hide the run's own peak; then nothing ('baseline') or
    K=64 trials at batch 128 ('stacked'). Returns the peak RSS since the reset, the whole
    process's peak (ru_maxrss, KiB on Linux), and on a GPU ``torch.cuda.max_memory_allocated``."""
    data = splits(load(data_dir, quick), device)
    reset = reset_peak_rss()
    result: dict[str, Any] = {"kind": kind, "peak_reset_after_loading": reset}
    if kind == "stacked":
        seconds, outcomes = run_stacked(data, MEMORY_LRS, MEMORY_BATCH, epochs, device)
        result["seconds"] = seconds
        result["steps"] = max(o.points[-1].iteration for o in outcomes)
        result["statuses"] = dict(Counter(o.status for o in outcomes))
    result["process_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_mib"] = peak_rss_mib() if reset else result["process_peak_rss_mib"]
    if device.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def case_memory(
    data_dir: Path | None, device: torch.device, epochs: float, quick: bool
) -> dict[str, Any]:
    """The baseline probe, then the stacked one, each in its own subprocess; the increase is
    the difference of their peaks after loading. The goal is judged on the stacked process's
    whole peak (on a GPU: its peak allocation)."""
    probes = {}
    for kind in ("baseline", "stacked"):
        command = [sys.executable, __file__, "--memory-probe", kind, "--device", device.type]
        command += ["--memory-epochs", f"{epochs:g}"]
        command += ["--data-dir", str(data_dir)] if data_dir is not None else []
        command += ["--quick"] if quick else []
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        probes[kind] = json.loads(done.stdout.splitlines()[-1])
    baseline, stacked = probes["baseline"], probes["stacked"]
    judged = "cuda_max_allocated_mib" if device.type == "cuda" else "process_peak_rss_mib"
    return {
        "trials": MEMORY_K,
        "batch_size": MEMORY_BATCH,
        "lrs": [MEMORY_LRS[0], MEMORY_LRS[-1]],
        "epochs": epochs,
        "baseline": baseline,
        "stacked": stacked,
        "rss_increase_mib": stacked["peak_rss_mib"] - baseline["peak_rss_mib"],
        "peak_judged_mib": stacked[judged],
    }


# --- Output ---------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in (header, *rows)
    ]
    return "\n".join(lines)


def count(n: float, noun: str) -> str:
    """'1 epoch', '2 epochs', '0.5 epochs'."""
    return f"{n:g} {noun}" + ("" if n == 1 else "s")


def goal(name: str, target: str, measured: str, passed: bool) -> dict[str, Any]:
    return {"goal": name, "target": target, "measured": measured, "passed": passed}


def flop_model_text(n_train: int) -> str:
    per_step = TRAIN_FLOP * K4_BATCH / 1e6
    return "\n".join(
        [
            f"FLOP model (mnist-mlp): m = {M:,} multiply-adds per example (forward pass)",
            f"  training step: 6m = {TRAIN_FLOP:,} FLOP per example (forward 2m + backward 4m); "
            f"{per_step:.2f} MFLOP per trial-step at batch {K4_BATCH}",
            f"  evaluation: 2m = {EVAL_FLOP:,} FLOP per example: the validation set at every check "
            f"(the start and every {EVAL_EVERY:g} epoch), the test set once at the end",
            f"  an epoch is {n_train:,} training examples; activations, loss, SGD update left out",
        ]
    )


def print_matmul(result: dict[str, Any]) -> None:
    print(f"\nmatmul {MATMUL_SIZE}x{MATMUL_SIZE} float32, median of {result['samples']}")
    rows = [[r["device"], str(r["threads"] or "-"), f"{r['gflops']:.1f}"] for r in result["rates"]]
    print(table(["device", "threads", "GFLOP/s"], rows))


def print_k4(result: dict[str, Any], n_train: int) -> None:
    print(
        f"\nK=4 at batch {K4_BATCH}: {count(result['epochs'], 'epoch')} of {n_train:,} images, a "
        f"check every {EVAL_EVERY:g} epoch, {count(result['repeats'], 'repeat')} interleaved, "
        f"medians, {torch.get_num_threads()} threads"
    )
    header = [
        "run",
        "trials",
        "wall s",
        "steps",
        "us/step",
        "GFLOP",
        "GFLOP/s",
        "of matmul",
        "val acc lr 0.5",
    ]
    rows = [
        [
            r["run"],
            str(r["trials"]),
            f"{r['median_seconds']:.2f}",
            str(r["steps"]),
            f"{r['us_per_step']:.0f}",
            f"{r['gflop']:.1f}",
            f"{r['gflops']:.2f}",
            f"{r['fraction_of_matmul']:.1%}",
            f"{r['final_val_accuracy_lr_0.5']:.4f}",
        ]
        for r in result["runs"]
    ]
    print(table(header, rows))
    print(f"stacked / single (median of paired ratios): {result['ratio_paired_median']:.3f}")


def print_grid(result: dict[str, Any]) -> None:
    print(
        f"\nfull grid: the textbook's {result['pairs']} (batch, lr) pairs, "
        f"{count(result['epochs'], 'epoch')}, a check every {EVAL_EVERY:g} epoch, plain SGD, "
        "each run measured once"
    )
    header = [
        "run",
        "trials",
        "workers",
        "wall s",
        "GFLOP",
        "GFLOP/s",
        "of matmul",
        "floor s",
        "wall/floor",
        "statuses",
    ]
    rows = [
        [
            f"{r['engine']} x{r['repeats']}",
            str(r["trials"]),
            str(r["workers"]),
            f"{r['wall_seconds']:.1f}",
            f"{r['gflop']:.1f}",
            f"{r['gflops']:.2f}",
            f"{r['fraction_of_matmul']:.1%}",
            f"{r['floor_seconds']:.1f}",
            f"{r['wall_over_floor']:.2f}",
            " ".join(f"{k} {v}" for k, v in r["statuses"].items()),
        ]
        for r in result["runs"]
    ]
    print(table(header, rows))
    print(f"speed-up sequential / vectorized: {result['speed_up']:.2f}x")
    if result["workers_peak_rss_mib"] is not None:
        rss = result["workers_peak_rss_mib"]
        print(f"largest grid worker's peak RSS: {rss:.0f} MiB (the parent's shared pages included)")


def print_memory(result: dict[str, Any], device: torch.device) -> None:
    baseline, stacked = result["baseline"], result["stacked"]
    print(
        f"\npeak memory: K={result['trials']} at batch {result['batch_size']}, lr "
        f"{result['lrs'][0]:g} .. {result['lrs'][1]:g}, {stacked['steps']} steps, each in a "
        "fresh process; peak after loading = peak RSS since a reset after the data was loaded"
    )
    header = ["process", "peak after loading MiB", "process peak MiB"]
    names = ["baseline (torch + data)", f"K={result['trials']} stacked"]
    keys = ["peak_rss_mib", "process_peak_rss_mib"]
    if device.type == "cuda":
        header.append("cuda max allocated MiB")
        keys.append("cuda_max_allocated_mib")
    rows = [
        [name, *(f"{probe[k]:.0f}" for k in keys)]
        for name, probe in zip(names, (baseline, stacked), strict=True)
    ]
    rows.append(["increase", f"{result['rss_increase_mib']:.0f}", "", ""][: len(header)])
    print(table(header, rows))


def goals(
    k4: dict[str, Any], grid: dict[str, Any] | None, memory: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each goal the measured cases allow judging, with pass or fail."""
    ratio = k4["ratio_paired_median"]
    found = [goal("K=4 stack at batch 16 / one trial", "<= 1.5", f"{ratio:.3f}", ratio <= 1.5)]
    if grid is not None:
        sequential, vectorized, repeated = grid["runs"]
        found += [
            goal(
                "grid speed-up, sequential / vectorized",
                ">= 4",
                f"{grid['speed_up']:.2f}",
                grid["speed_up"] >= 4,
            ),
            goal(
                "grid vectorized wall / floor",
                "<= 3",
                f"{vectorized['wall_over_floor']:.2f}",
                vectorized["wall_over_floor"] <= 3,
            ),
            goal(
                f"grid x{GRID_REPEATS} vectorized faster than x1 sequential",
                "yes",
                f"{repeated['wall_seconds']:.1f} s vs {sequential['wall_seconds']:.1f} s",
                grid["repeats_faster_than_sequential"],
            ),
        ]
    peak = memory["peak_judged_mib"]
    found.append(
        goal(
            f"K={MEMORY_K} at batch {MEMORY_BATCH} peak memory",
            "<= 2 GiB",
            f"{peak:.0f} MiB",
            peak <= MEMORY_LIMIT_MIB,
        )
    )
    return found


def print_goals(found: list[dict[str, Any]]) -> None:
    rows = [
        [g["goal"], g["target"], g["measured"], "pass" if g["passed"] else "FAIL"] for g in found
    ]
    print("\ngoals")
    print(table(["goal", "target", "measured", "result"], rows))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="MNIST folder (default: $LRKIT_DATA_DIR, else ../shared/data/mnist)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--epochs", type=float, default=None, help="epochs of the grid (default 30; 1 with --quick)"
    )
    parser.add_argument(
        "--k4-epochs",
        type=float,
        default=None,
        help="epochs of the K=4 case (default 2; 1 with --quick)",
    )
    parser.add_argument(
        "--k4-repeats",
        type=int,
        default=None,
        help="timing repeats of the K=4 case (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--memory-epochs", type=float, default=1.0, help="epochs of the K=64 memory run"
    )
    parser.add_argument("--skip-grid", action="store_true", help="leave out the full grid")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check that the script runs: 2,000 training images, 1 epoch, 1 repeat",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file (default bench/results/bench_engine[_cuda].json; with --quick, one in "
        "the temporary folder)",
    )
    parser.add_argument("--memory-probe", choices=("baseline", "stacked"), help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if args.memory_probe is not None:
        print(
            json.dumps(
                memory_probe(
                    args.memory_probe, args.data_dir, device, args.memory_epochs, args.quick
                )
            )
        )
        return
    quick = args.quick
    epochs = args.epochs or (1.0 if quick else 30.0)
    k4_epochs = args.k4_epochs or (1.0 if quick else 2.0)
    k4_repeats = args.k4_repeats or (1 if quick else 3)
    out = args.out or (
        Path(tempfile.gettempdir()) / "bench_engine_quick.json"
        if quick
        else RESULTS / ("bench_engine_cuda.json" if device.type == "cuda" else "bench_engine.json")
    )

    info = machine()
    load_average = os.getloadavg()[0]
    work = load(args.data_dir, quick)
    data = splits(work, device)
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, "
        f"torch {info['torch']}, Python {info['python']}"
        + (f", {info['cuda']}" if info["cuda"] else "")
        + f"; load average {load_average:.2f} at the start (a busy machine disturbs timings)"
    )
    train, val, test = data
    print(f"data: {work.data_name}, {len(train):,} train / {len(val):,} val / {len(test):,} test")
    print(flop_model_text(len(train)))

    matmul = case_matmul(device, 3 if quick else 7)
    print_matmul(matmul)
    rate = matmul["reference"]
    k4 = case_k4(data, k4_epochs, k4_repeats, device, rate)
    print_k4(k4, len(train))
    grid = None
    if not args.skip_grid:
        grid = case_grid(work, epochs, device, rate)
        print_grid(grid)
    memory = case_memory(args.data_dir, device, args.memory_epochs, quick)
    print_memory(memory, device)
    found = goals(k4, grid, memory)
    print_goals(found)

    document = {
        "benchmark": "bench_engine",
        "machine": info,
        "settings": {
            "device": args.device,
            "data": work.data_name,
            "train_images": len(train),
            "val_images": len(val),
            "test_images": len(test),
            "quick": quick,
            "load_average_at_start": load_average,
            "grid_epochs": None if args.skip_grid else epochs,
            "k4_epochs": k4_epochs,
            "k4_repeats": k4_repeats,
            "memory_epochs": args.memory_epochs,
            "eval_every": EVAL_EVERY,
            "seed": SEED,
        },
        "flop_model": {
            "multiply_adds_per_example": M,
            "train_flop_per_example": TRAIN_FLOP,
            "eval_flop_per_example": EVAL_FLOP,
            "text": flop_model_text(len(train)),
        },
        "matmul": matmul,
        "k4": k4,
        "grid": grid,
        "memory": memory,
        "goals": found,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
