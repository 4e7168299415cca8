"""Range-test speed: lrkit against a bare PyTorch loop and against torch-lr-finder.

1. Overhead: ``find_lr`` against a bare loop that takes the same optimizer steps (same model,
   batches, learning rates) and reads each loss, as any range test must. Goal: <= 1.03x.
2. torch-lr-finder (``LRFinder.range_test`` + ``reset``) on the same model, data, batch size
   and number of steps, with an exponential range that does not diverge, so both run every
   step. Goal: lrkit faster.

Runs are interleaved (the order alternates each repeat). The primary figure is the median of
the paired ratios (each repeat's lrkit time over the bare loop's from the same repeat), which
cancels slow spells of a shared machine; minimums and medians are shown beside it.
Usage: python bench/bench_find.py [--steps N] [--repeats R] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lrkit.data.mnist import load_mnist, resolve_data_dir
from lrkit.data.tensors import BatchStream, TensorData
from lrkit.models import build_model
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.programs import exponential_range
from lrkit.rangetest.settings import RangeTestSettings
from machine import machine

START_LR, END_LR = 1e-4, 0.5  # the textbook network does not diverge in this range


def bare_loop(train: TensorData, batch_size: int, lrs: tuple[float, ...]) -> float:
    model = build_model("mnist-mlp", 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lrs[0])
    loss_fn = nn.CrossEntropyLoss()
    batches = iter(BatchStream(train, batch_size, seed=0))
    started = time.perf_counter()
    losses = []
    for lr in lrs:
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return time.perf_counter() - started


def lrkit_range_test(train: TensorData, batch_size: int, steps: int) -> float:
    model = build_model("mnist-mlp", 0)
    started = time.perf_counter()
    settings = RangeTestSettings(
        batch_size=batch_size,
        program=exponential_range(START_LR, END_LR, steps),
        diverge_factor=1e9,
    )
    result = find_lr(model, train, settings)
    elapsed = time.perf_counter() - started
    assert len(result.rounds[0].record.points) == steps
    return elapsed


def torch_lr_finder_test(train: TensorData, batch_size: int, steps: int) -> float:
    from torch_lr_finder import LRFinder

    model = build_model("mnist-mlp", 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=START_LR)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train.x, train.y),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    # Its progress bar and messages go to a buffer: a terminal's redraw time is not its work.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        started = time.perf_counter()
        finder = LRFinder(model, optimizer, nn.CrossEntropyLoss(), device="cpu")
        finder.range_test(loader, end_lr=END_LR, num_iter=steps, step_mode="exp", diverge_th=1e9)
        finder.reset()
        elapsed = time.perf_counter() - started
    assert len(finder.history["lr"]) == steps
    return elapsed


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repeats of numerator[i] / denominator[i]."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def measure(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up
        run()
    order = list(runs)
    for _ in range(repeats):
        for name in order:
            times[name].append(runs[name]())
        order.reverse()  # alternate, so no runner always follows the same one
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "bench_find.json"
    )
    args = parser.parse_args()

    folder, _ = resolve_data_dir(args.data_dir)
    train, _ = load_mnist(folder).train.split(1 / 12)
    lrs = exponential_range(START_LR, END_LR, args.steps).lrs
    runs: dict[str, Callable[[], float]] = {
        "bare PyTorch loop": lambda: bare_loop(train, args.batch_size, lrs),
        "lrkit find_lr": lambda: lrkit_range_test(train, args.batch_size, args.steps),
    }
    try:
        import torch_lr_finder  # noqa: F401

        runs["torch-lr-finder"] = lambda: torch_lr_finder_test(train, args.batch_size, args.steps)
    except ImportError:
        print("torch-lr-finder is not installed: `make bench` installs bench/requirements.txt")

    times = measure(runs, args.repeats)
    bare_times = times["bare PyTorch loop"]
    print(
        f"{args.steps} steps of mnist-mlp at batch {args.batch_size}, {len(train)} images, "
        f"{args.repeats} repeats, {torch.get_num_threads()} threads"
    )
    print(
        f"{'runner':<18} {'min s':>6} {'median s':>8} {'us/step':>7} "
        f"{'vs bare (paired)':>16} {'vs bare (min)':>13} {'vs lrkit (paired)':>17}"
    )
    rows = {}
    for name, seconds in times.items():
        rows[name] = {
            "min_seconds": min(seconds),
            "median_seconds": statistics.median(seconds),
            "us_per_step": 1e6 * statistics.median(seconds) / args.steps,
            "over_bare_paired": paired_ratio(seconds, bare_times),
            "over_bare_min": min(seconds) / min(bare_times),
            "over_lrkit_paired": paired_ratio(seconds, times["lrkit find_lr"]),
        }
        row = rows[name]
        print(
            f"{name:<18} {row['min_seconds']:6.3f} {row['median_seconds']:8.3f} "
            f"{row['us_per_step']:7.0f} {row['over_bare_paired']:16.3f} "
            f"{row['over_bare_min']:13.3f} {row['over_lrkit_paired']:17.3f}"
        )
    document = {
        "benchmark": "bench_find",
        "machine": machine(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "train_images": len(train),
        "repeats": args.repeats,
        "seconds": times,
        "runners": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
