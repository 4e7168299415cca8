"""Does ``lrkit advise`` choose a good batch size? The truth measured side by side.

For each problem and each batch size in {16, 32, 64, 128, 256, 512}, a small grid of fixed
learning rates (factors of 2, the same at every batch size, chosen before advise was run on
it) is trained at two seeds for the problem's epochs, timing the training steps alone (the
checks' evaluations untimed), one thread a process. From those runs:

- time to the target: the training seconds at which the validation accuracy first reached
  the target (linear between checks), the mean over the seeds, at the lr that is soonest
  (inf where a seed never reached it);
- accuracy after the epochs: the mean over the seeds at the lr that is best.

Then ``advise_batch_size`` runs on the same problem (one thread, its race on one worker
process), once for the target (``--target``, at most the epochs) and once for the epochs
(``--epochs``), with batch sizes from 16 to 512; its advised batch size and lr are trained
with the grid's seeds too. Done when, on each problem, the advised batch size's time to the
target (at its best grid lr) is within 1.25x of the fastest batch size's, and in epochs mode
its accuracy is within noise of the best (noise: max(2 x the seeds' sd at the best, 0.003)).
The time and accuracy at advise's own lr are reported beside them.

Usage: python bench/bench_batch.py [--problems mnist-mlp,mnist-cnn,mnist-logistic] [--data-dir DIR]
       [--workers 2] [--redo-advise target,epochs]
Writes bench/results/bench_batch.json (runs cached in bench/results/batch/<problem>.json).
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import itertools
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from lrkit.advise.settings import AdviseSettings
from lrkit.batchsize import BatchSettings, advise_batch_size
from lrkit.batchsize.crossing import first_reached
from lrkit.data.tensors import TensorData
from lrkit.training.evaluate import evaluate
from lrkit.training.optimizers import make_optimizer
from lrkit.workload import Workload, load_workload
from machine import machine

RESULTS = Path(__file__).parent / "results"
BATCH_SIZES = (16, 32, 64, 128, 256, 512)
SEEDS = (0, 1)
CHECK_SEEDS = (2, 3)
"""Seeds the grid never saw: the target verdict's three runs again (the advised size at its
best grid lr and at advise's own lr, the fastest size at its best grid lr), free of the
grid's choice of lr on seeds 0 and 1 (the time to a target varies a lot between seeds)."""
ADVISE_SEED = 100
"""Advise's seed: none of the grid's, so that its races are not the grid's own runs."""
CHECKS_PER_EPOCH = 4
ADAM_TARGET = 0.94
"""Set from the grid of mnist-mlp-adam alone (see its problem)."""
MOMENTUM_TARGET = 0.95
"""Set from the grid of mnist-mlp-momentum alone (see its problem)."""
RELU_TARGET = 0.95
"""Set from the grid of mnist-relu-adam alone (see its problem)."""
BATCHNORM_TARGET = 0.96
"""Set from the grid of mnist-batchnorm-momentum alone (see its problem)."""
REFINED = ("mnist-mlp",)
"""Problems whose grid is refined to factors of sqrt 2 (the geometric midpoints added at every
batch size): added after the textbook's network missed at 1.30x with the x2 grid, where the
advised size's best lr (advise's 1.3) lay between two grid points; the truth is reported on
both grids."""
TIME_RATIO = 1.25
NOISE_FLOOR = 0.003


@dataclass(frozen=True)
class Problem:
    name: str
    model: str
    optimizer: str
    lrs: tuple[float, ...]
    epochs: float
    target: float
    momentum: float = 0.9


PROBLEMS = {
    p.name: p
    for p in (
        # The textbook's network with plain SGD; a target it reaches at every batch size.
        Problem("mnist-mlp", "mnist-mlp", "sgd", (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4), 10.0, 0.95),
        # The small CNN with momentum: another kind (convolutions, ReLU, momentum).
        Problem(
            "mnist-cnn", "mnist-cnn", "momentum", (0.005, 0.01, 0.02, 0.04, 0.08, 0.16), 4.0, 0.97
        ),
        # Added after the target mode's change (the lr that reached the target first) and
        # before advise ran on it: logistic regression (convex, SGD). Its target was set from
        # the grid alone: the highest of 0.88 .. 0.92 that every batch size reaches.
        Problem(
            "mnist-logistic", "logistic", "sgd", (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2), 5.0, 0.9
        ),
        # Added after the results above, before advise ran on it, with nothing changed since:
        # the textbook's network with Adam (an adaptive optimizer: the race's horizon
        # correction applies). Its target set from its grid alone, as for logistic regression
        # (the highest of 0.93 .. 0.97 every batch size reaches).
        Problem(
            "mnist-mlp-adam",
            "mnist-mlp",
            "adam",
            (2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
            5.0,
            ADAM_TARGET,
        ),
        # Chosen with a change to the target mode (longer races; tried and dropped, see
        # BENCHMARKS.md), before advise ran on it: the textbook's network with momentum 0.9;
        # its target from its grid alone, as above.
        Problem(
            "mnist-mlp-momentum",
            "mnist-mlp",
            "momentum",
            (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
            5.0,
            MOMENTUM_TARGET,
        ),
        # Chosen before the target mode's fitted crossing was written (2026-12-02, second
        # session), before advise ran on it: a wider, deeper ReLU network (784-128-64-10) with
        # Adam; its target from its grid alone (the highest of 0.95 .. 0.98 every batch size
        # reaches).
        Problem(
            "mnist-relu-adam",
            "batch_models:relu_mlp",
            "adam",
            (1.25e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3),
            4.0,
            RELU_TARGET,
        ),
        # Chosen before the noise scale was read at the target (2026-12-02, second session),
        # before advise ran on it: a ReLU network with batch normalisation (784-128-128-10)
        # and momentum 0.9; its target from its grid alone, as above.
        Problem(
            "mnist-batchnorm-momentum",
            "batch_models:batchnorm_mlp",
            "momentum",
            (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
            4.0,
            BATCHNORM_TARGET,
        ),
    )
}


def workload(problem: Problem, data_dir: Path | None) -> Workload:
    return load_workload(problem.model, None, data_dir, None, 1 / 12, notify=lambda m: None)


def train_timed(
    problem: Problem, work: Workload, batch_size: int, lr: float, seed: int
) -> dict[str, Any]:
    """One run: the curve of (epoch, training seconds so far, validation accuracy)."""
    train = work.train
    assert isinstance(train, TensorData) and work.val is not None
    model = work.make_model(seed)
    optimizer = make_optimizer(problem.optimizer, model, lr, problem.momentum)
    generator = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(train) / batch_size)
    total = math.ceil(problem.epochs * per_epoch)
    check = max(1, per_epoch // CHECKS_PER_EPOCH)
    curve: list[tuple[float, float, float]] = []
    seconds, step, order, position = 0.0, 0, torch.randperm(len(train), generator=generator), 0
    status = "done"
    model.train()
    while step < total:
        started = time.perf_counter()
        for _ in range(min(check, total - step)):
            if position >= len(train):
                order, position = torch.randperm(len(train), generator=generator), 0
            index = order[position : position + batch_size]
            position += batch_size
            optimizer.zero_grad(set_to_none=True)
            loss = work.loss_fn(model(train.x[index]), train.y[index])
            loss.backward()
            optimizer.step()
            step += 1
        seconds += time.perf_counter() - started
        if not math.isfinite(float(loss.detach())):
            status = "diverged"
            break
        _, accuracy = evaluate(model, work.loss_fn, work.val)
        curve.append((step / per_epoch, seconds, accuracy))
    return {
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "status": status,
        "curve": curve,
        "accuracy": curve[-1][2] if status == "done" and curve else 0.0,
    }


_WORK: dict[str, Workload] = {}


def _run(
    problem: Problem, data_dir: str | None, batch_size: int, lr: float, seed: int
) -> dict[str, Any]:
    torch.set_num_threads(1)
    if problem.name not in _WORK:
        _WORK[problem.name] = workload(problem, Path(data_dir) if data_dir else None)
    return train_timed(problem, _WORK[problem.name], batch_size, lr, seed)


def trained_seconds(run: dict[str, Any]) -> float:
    return float(run["curve"][-1][1]) if run["curve"] else 0.0


def seconds_to_target(run: dict[str, Any], target: float) -> float:
    """Training seconds at which the run first reached ``target`` (inf: never)."""
    if run["status"] != "done":
        return math.inf
    at = first_reached(tuple((s, a) for _, s, a in run["curve"]), target, True)
    return math.inf if at is None else at


def key(batch_size: int, lr: float, seed: int) -> str:
    return f"{batch_size}:{lr:g}:{seed}"


def run_all(
    problem: Problem,
    jobs: list[tuple[int, float, int]],
    cache: dict[str, Any],
    path: Path,
    data_dir: Path | None,
    workers: int,
) -> None:
    todo = [j for j in jobs if key(*j) not in cache["runs"]]
    if not todo:
        return
    with futures.ProcessPoolExecutor(workers) as pool:
        pending = {
            pool.submit(_run, problem, str(data_dir) if data_dir else None, *j): j for j in todo
        }
        for done, future in enumerate(futures.as_completed(pending), 1):
            record = future.result()
            cache["runs"][key(record["batch_size"], record["lr"], record["seed"])] = record
            path.write_text(json.dumps(cache))
            print(
                f"[{problem.name} {done}/{len(todo)}] batch {record['batch_size']} lr "
                f"{record['lr']:g} seed {record['seed']}: {record['status']}, accuracy "
                f"{record['accuracy']:.4f}, {trained_seconds(record):.1f} s",
                flush=True,
            )


def refined(lrs: tuple[float, ...]) -> tuple[float, ...]:
    """``lrs`` with the geometric midpoint of each neighbouring pair (rounded to 4 figures)."""
    middles = [float(f"{math.sqrt(a * b):.4g}") for a, b in itertools.pairwise(lrs)]
    return tuple(sorted((*lrs, *middles)))


def truth(
    problem: Problem, runs: dict[str, Any], lrs_for: dict[int, tuple[float, ...]]
) -> dict[int, dict[str, Any]]:
    """Per batch size: the soonest lr's time to the target, the best lr's accuracy."""
    table: dict[int, dict[str, Any]] = {}
    for b in BATCH_SIZES:
        rows = []
        for lr in lrs_for[b]:
            records = [runs[key(b, lr, s)] for s in SEEDS]
            times = [seconds_to_target(r, problem.target) for r in records]
            accuracies = [r["accuracy"] for r in records]
            rows.append(
                {
                    "lr": lr,
                    "seconds": statistics.fmean(times)
                    if all(math.isfinite(t) for t in times)
                    else math.inf,
                    "accuracy": statistics.fmean(accuracies),
                    "accuracy_sd": statistics.stdev(accuracies),
                }
            )
        soonest = min(rows, key=lambda r: r["seconds"])
        best = max(rows, key=lambda r: r["accuracy"])
        table[b] = {
            "time_lr": soonest["lr"],
            "seconds": soonest["seconds"],
            "accuracy_lr": best["lr"],
            "accuracy": best["accuracy"],
            "accuracy_sd": best["accuracy_sd"],
            "grid": rows,
        }
    return table


def run_advise(problem: Problem, work: Workload, mode: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    race = AdviseSettings(
        epochs=problem.epochs,
        optimizer=problem.optimizer,
        momentum=problem.momentum,
        metric="accuracy",
        seed=ADVISE_SEED,
        workers=1,
    )
    settings = BatchSettings(
        mode=mode,
        target=problem.target if mode == "target" else None,
        min_batch_size=16,
        max_batch_size=512,
        race=race,
    )
    assert isinstance(work.train, TensorData) and work.val is not None
    started = time.perf_counter()
    found = advise_batch_size(
        work.make_model,
        work.train,
        work.val,
        settings,
        loss_fn=work.loss_fn,
        on_stage=lambda s: print(f"  advise {mode}: {s}", flush=True),
    )
    return {"seconds": time.perf_counter() - started, "result": found.to_json()}


def finite(value: Any) -> Any:
    """``value`` with every non-finite float as None (plain JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--redo-advise", default="", help="comma-separated modes (target, epochs) to run again"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_batch.json")
    parser.add_argument(
        "--grid-only", action="store_true", help="train the grids and stop (no advise, no JSON)"
    )
    args = parser.parse_args()
    data_dir = args.data_dir or (
        Path(os.environ["LRKIT_DATA_DIR"]) if "LRKIT_DATA_DIR" in os.environ else None
    )
    names = args.problems.split(",")
    redo = set(filter(None, args.redo_advise.split(",")))
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown:
        parser.error(f"--problems: unknown {', '.join(unknown)}; choose from {', '.join(PROBLEMS)}")
    summary: dict[str, Any] = {"benchmark": "bench_batch", "machine": machine(), "problems": {}}
    (RESULTS / "batch").mkdir(parents=True, exist_ok=True)
    for name in names:
        problem = PROBLEMS[name]
        path = RESULTS / "batch" / f"{name}.json"
        cache = (
            json.loads(path.read_text())
            if path.exists()
            else {"problem": asdict(problem), "runs": {}, "advise": {}}
        )
        defined = json.loads(json.dumps(asdict(problem)))
        if {**cache["problem"], "target": None} != {**defined, "target": None}:
            cache = {"problem": defined, "runs": {}, "advise": {}}
        elif cache["problem"] != defined:  # the runs hold for any target; advise does not
            cache = {"problem": defined, "runs": cache["runs"], "advise": {}}
        lrs = refined(problem.lrs) if name in REFINED else problem.lrs
        grid = [(b, lr, s) for b in BATCH_SIZES for lr in lrs for s in SEEDS]
        run_all(problem, grid, cache, path, data_dir, args.workers)
        if args.grid_only:
            continue
        work = workload(problem, data_dir)
        for mode in ("target", "epochs"):
            if mode in redo or mode not in cache["advise"]:
                cache["advise"][mode] = run_advise(problem, work, mode)
                path.write_text(json.dumps(cache))
        # advise's own (batch size, lr), trained with the grid's seeds
        extra = sorted(
            {
                (int(a["result"]["batch_size"]), float(a["result"]["lr"]), s)
                for a in cache["advise"].values()
                for s in SEEDS
            }
        )
        run_all(problem, extra, cache, path, data_dir, args.workers)
        table = truth(problem, cache["runs"], {b: problem.lrs for b in BATCH_SIZES})
        fine = (
            truth(problem, cache["runs"], {b: lrs for b in BATCH_SIZES})
            if lrs != problem.lrs
            else None
        )
        fastest = min(table[b]["seconds"] for b in BATCH_SIZES)
        fastest_b = min(BATCH_SIZES, key=lambda b: table[b]["seconds"])
        fine_fastest = min(fine[b]["seconds"] for b in BATCH_SIZES) if fine else math.inf
        held_out: dict[str, tuple[int, float]] = {}
        if "target" in cache["advise"]:
            advised = cache["advise"]["target"]["result"]
            b_adv = int(advised["batch_size"])
            held_out = {
                "advised": (b_adv, table[b_adv]["time_lr"]),
                "own": (b_adv, float(advised["lr"])),
                "fastest": (fastest_b, table[fastest_b]["time_lr"]),
            }
            checks = sorted({(b, lr, s) for b, lr in held_out.values() for s in CHECK_SEEDS})
            run_all(problem, checks, cache, path, data_dir, args.workers)
        best_b = max(BATCH_SIZES, key=lambda b: table[b]["accuracy"])
        noise = max(2 * table[best_b]["accuracy_sd"], NOISE_FLOOR)
        verdicts = {}
        for mode, found in cache["advise"].items():
            b, lr = int(found["result"]["batch_size"]), float(found["result"]["lr"])
            own = [cache["runs"][key(b, lr, s)] for s in SEEDS]
            own_time = [seconds_to_target(r, problem.target) for r in own]
            own_accuracy = statistics.fmean(r["accuracy"] for r in own)
            verdict: dict[str, Any] = {
                "batch_size": b,
                "lr": lr,
                "predicted": found["result"]["predicted_batch_size"],
                "noise_scale": found["result"]["noise_scale"]["b_noise"],
                "advise_seconds": found["seconds"],
                "own_seconds_to_target": statistics.fmean(own_time)
                if all(math.isfinite(t) for t in own_time)
                else math.inf,
                "own_accuracy": own_accuracy,
            }
            if mode == "target":
                ratio = table[b]["seconds"] / fastest
                verdict |= {
                    "seconds_to_target": table[b]["seconds"],
                    "fastest": fastest,
                    "ratio": ratio,
                    "ok": ratio <= TIME_RATIO,
                    "own_ratio": verdict["own_seconds_to_target"] / fastest,
                }
                seconds = {
                    name: statistics.fmean(
                        seconds_to_target(cache["runs"][key(b_, lr_, s)], problem.target)
                        for s in CHECK_SEEDS
                    )
                    for name, (b_, lr_) in held_out.items()
                }
                verdict["held_out_seeds"] = {
                    **seconds,
                    "ratio": seconds["advised"] / seconds["fastest"],
                    "own_ratio": seconds["own"] / seconds["fastest"],
                }
                if fine is not None:
                    verdict |= {
                        "refined_ratio": fine[b]["seconds"] / fine_fastest,
                        "refined_ok": fine[b]["seconds"] / fine_fastest <= TIME_RATIO,
                        "refined_own_ratio": verdict["own_seconds_to_target"] / fine_fastest,
                    }
            else:
                gap = table[best_b]["accuracy"] - table[b]["accuracy"]
                verdict |= {
                    "accuracy": table[b]["accuracy"],
                    "best": table[best_b]["accuracy"],
                    "best_batch_size": best_b,
                    "gap": gap,
                    "noise": noise,
                    "ok": gap <= noise + 1e-9,  # (an exact tie is within: 1e-9 for the float error)
                    "own_gap": table[best_b]["accuracy"] - own_accuracy,
                }
            verdicts[mode] = verdict
        summary["problems"][name] = {
            "problem": asdict(problem),
            "truth": {str(b): v for b, v in table.items()},
            "advise": verdicts,
        }
        if fine is not None:
            summary["problems"][name]["truth_refined"] = {str(b): v for b, v in fine.items()}
        print(f"\n== {name}: target {problem.target}, {problem.epochs:g} epochs")
        print(
            f"   {'batch':>5} {'time lr':>8} {'s to target':>11} {'x fastest':>9} "
            f"{'acc lr':>7} {'accuracy':>9}"
        )
        for b in BATCH_SIZES:
            row = table[b]
            print(
                f"   {b:>5} {row['time_lr']:>8g} {row['seconds']:>11.2f} "
                f"{row['seconds'] / fastest:>9.2f} "
                f"{row['accuracy_lr']:>7g} {row['accuracy']:>9.4f}"
            )
        if fine is not None:
            print("   refined grid (factors of sqrt 2):")
            for b in BATCH_SIZES:
                row = fine[b]
                print(
                    f"   {b:>5} {row['time_lr']:>8g} {row['seconds']:>11.2f} "
                    f"{row['seconds'] / fine_fastest:>9.2f} "
                    f"{row['accuracy_lr']:>7g} {row['accuracy']:>9.4f}"
                )
        for mode, v in verdicts.items():
            if mode == "target" and "refined_ratio" in v:
                print(
                    f"   refined grid: advise target {v['refined_ratio']:.2f}x the fastest at "
                    f"its best lr, {v['refined_own_ratio']:.2f}x at its own; "
                    f"{'ok' if v['refined_ok'] else 'MISS'}"
                )
            if mode == "target":
                h = v["held_out_seeds"]
                print(
                    f"   held-out seeds {CHECK_SEEDS}: advised size at its best grid lr "
                    f"{h['ratio']:.2f}x the fastest size ({fastest_b}) at its best, at its own "
                    f"lr {h['own_ratio']:.2f}x"
                )
                print(
                    f"   advise target: batch {v['batch_size']} (predicted {v['predicted']}, "
                    f"B_noise {v['noise_scale']:.3g}), lr {v['lr']:.3g}: {v['ratio']:.2f}x the "
                    f"fastest at its best grid lr, {v['own_ratio']:.2f}x at its own lr; "
                    f"{'ok' if v['ok'] else 'MISS'} ({v['advise_seconds']:.0f} s)"
                )
            else:
                print(
                    f"   advise epochs: batch {v['batch_size']} (predicted {v['predicted']}), "
                    f"lr {v['lr']:.3g}: accuracy {v['accuracy']:.4f} vs best {v['best']:.4f} "
                    f"(batch {v['best_batch_size']}), gap {v['gap']:.4f}, noise {v['noise']:.4f}; "
                    f"own lr gap {v['own_gap']:.4f}; {'ok' if v['ok'] else 'MISS'} "
                    f"({v['advise_seconds']:.0f} s)"
                )
    if not args.grid_only:
        args.out.write_text(json.dumps(finite(summary), indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
