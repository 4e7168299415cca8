"""``lrkit noise``: the gradient noise scale B_simple over a training run, and the critical
batch size it gives (McCandlish et al. 2018)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lrkit import validation as check
from lrkit.cli.options import (
    DataDirOption,
    DataOption,
    DeviceOption,
    LossOption,
    ModelOption,
    MomentumOption,
    OptimizerOption,
    ValFractionOption,
    WeightDecayOption,
    check_optimizer,
    parse_fraction,
)
from lrkit.cli.output import Outputs, check_outputs, format_number, text_table, write_json
from lrkit.cli.progress import on_interrupt, progress
from lrkit.errors import LrkitValueError
from lrkit.noise import ESTIMATORS

if TYPE_CHECKING:
    import torch

    from lrkit.noise.tracking import NoisePoint, NoiseRun

HELP = "\n\n".join(
    [
        "Measure the gradient noise scale B_simple = tr(Sigma) / |G|^2 while training, and read "
        "the critical batch size from it.",
        "B_simple says how many examples a step can use before more of them stop helping: the "
        "best lr grows about linearly with the batch size below it and flattens above it "
        "(McCandlish et al. 2018). Per-example gradients (torch.func) measure it exactly for "
        "small models; the paper's two-batch-size estimator for large ones (--estimator).",
        "Example: lrkit noise --epochs 5 --plot noise.png --json noise.json",
        "Data parallel: torchrun --nproc-per-node N -m lrkit noise ... trains a "
        "DistributedDataParallel model on global batches of --batch-size examples per rank "
        "and measures at every step for free: each rank's own gradient is the small batch, "
        "the all-reduced one the big batch (the two-batch estimator, two-batch-ddp); rank 0 "
        "prints and writes the files.",
    ]
)


def noise(
    model: ModelOption = "mnist-mlp",
    data: DataOption = None,
    data_dir: DataDirOption = None,
    loss: LossOption = None,
    batch_size: Annotated[int, typer.Option(help="Training batch size (at least 2).")] = 16,
    lr: Annotated[float, typer.Option("--lr", help="Training learning rate.")] = 0.5,
    epochs: Annotated[float, typer.Option(help="Epochs to train.")] = 5.0,
    measure_every: Annotated[
        float | None,
        typer.Option(
            help="Epochs between measurements (one more at the start; default 0.25, or the "
            "epochs of a shorter run)."
        ),
    ] = None,
    examples: Annotated[
        int | None,
        typer.Option(
            help="Examples drawn for each measurement, at most the training examples "
            "(default 2048, or all of them where there are fewer)."
        ),
    ] = None,
    estimator: Annotated[
        str,
        typer.Option(
            help="auto (per-example when the model is small enough), per-example or two-batch."
        ),
    ] = "auto",
    val_fraction: ValFractionOption = "1/12",
    optimizer: OptimizerOption = "sgd",
    momentum: MomentumOption = 0.9,
    weight_decay: WeightDecayOption = 0.0,
    device: DeviceOption = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the weights, data order and draws.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Figure of B_simple over training.")] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the measurements as JSON.")
    ] = None,
) -> None:
    from lrkit.noise.tracking import MEASURE_EVERY, NoiseSettings

    check.budget_epochs("epochs", epochs)  # first: the default --measure-every follows it
    settings = NoiseSettings(
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        measure_every=check.default_between_checks(MEASURE_EVERY, epochs)
        if measure_every is None
        else measure_every,
        examples=examples,
        estimator=check.choice("estimator", estimator, ESTIMATORS),
        seed=seed,
    ).check()
    check_optimizer(optimizer, momentum, weight_decay)
    check.choice("device", device, ("auto", "cpu", "cuda"))
    fraction = parse_fraction("val_fraction", val_fraction)
    if plot is not None:
        from lrkit.plots.figure import check_plot_path

        check_plot_path(plot)
    outputs = check_outputs([("--json", json_file), ("--plot", plot)])

    from lrkit.data.tensors import TensorData
    from lrkit.noise.tracking import RunNames, track_noise_scale
    from lrkit.training import distributed
    from lrkit.training.device import resolve_device
    from lrkit.training.fit_check import check_model_fits
    from lrkit.training.optimizers import make_optimizer
    from lrkit.workload import load_workload

    def run_tracking(target: torch.device, main: bool) -> NoiseRun:
        # The model lives only in this call: a DDP model must be gone before its process
        # group is (see training.distributed.torchrun_group).
        world = distributed.world_size()
        work = load_workload(
            model,
            data,
            data_dir,
            loss,
            fraction,
            notify=lambda m: print(f"lrkit noise: {m}", file=sys.stderr) if main else None,
        )
        if not isinstance(work.train, TensorData) or work.val is None:
            raise LrkitValueError(
                "--data: the noise scale needs tensor data (TensorData or (x, y)) with a "
                "validation part"
            )
        if batch_size * world > len(work.train):
            check.positive_int("batch_size", batch_size)
            per_rank = f" over {world} ranks" if world > 1 else ""
            raise LrkitValueError(
                f"--batch-size must be at most the number of training examples{per_rank} "
                f"({len(work.train)}{f' / {world}' if world > 1 else ''}), got {batch_size}"
            )
        settings.check(len(work.train))  # before the model: nothing is built for nothing
        module = work.make_model(seed).to(target)
        first = work.train.head(batch_size).to(target)
        check_model_fits(module, work.loss_fn, first.x, first.y, targets=(work.train.y, work.val.y))
        net = distributed.wrap(module, target)
        opt = make_optimizer(optimizer, net, lr, momentum, weight_decay)
        with progress(None if main else False) as bar:
            bar.start("epochs", epochs)
            return track_noise_scale(
                net,
                opt,
                work.loss_fn,
                work.train.to(target),
                work.val.to(target),
                settings,
                RunNames(work.model_name, work.data_name),
                on_point=lambda p: bar.update(p.epoch, f"B_simple {p.b_simple:.3g}"),
            )

    # Under torchrun this is one process of a data-parallel job (a DDP model, --batch-size
    # examples per rank); rank 0 alone prints and writes the files.
    with distributed.torchrun_group(resolve_device(device)) as target:
        main = distributed.is_main()
        with on_interrupt(outputs.interrupted):
            result = run_tracking(target, main)
            if main:
                _report(result, json_file, plot, outputs)


def _report(result: NoiseRun, json_file: Path | None, plot: Path | None, outputs: Outputs) -> None:
    print(summary(result))
    if json_file is not None:
        with outputs.writing("--json", json_file):
            write_json(json_file, result.to_json())
    if plot is not None and result.points:
        from lrkit.plots.noise import plot_noise_scale

        with outputs.writing("--plot", plot):
            plot_noise_scale(result, plot)
        print(f"wrote {plot}", file=sys.stderr)


def summary(result: NoiseRun) -> str:
    points = result.points
    lines = [
        f"gradient noise scale: {result.model} on {result.data}, batch size {result.batch_size}"
        + (
            f" ({result.batch_size // result.world_size} per rank x {result.world_size} ranks)"
            if result.world_size > 1
            else ""
        )
        + f", lr {format_number(result.lr)}, {result.estimator} estimator "
        f"({result.examples_per_measurement} examples a measurement), {result.seconds:.1f} s",
        "",
    ]
    if not points:
        lines.append(f"no measurement: training {result.status} before the first check")
        return "\n".join(lines)
    if result.status == "diverged" and not any(_measured(p) for p in points):
        lines.append(
            f"training diverged at iteration {result.diverged_at}, so no noise scale was "
            "measured: the gradients were not finite from the start, before any step; check "
            "the model, the data and the loss"
        )
        return "\n".join(lines)
    step = max(1, math.ceil(len(points) / 12))
    shown = [*points[:-1:step], points[-1]]
    rows: list[list[str | int | float]] = [
        [
            f"{p.epoch:.2f}",
            p.iteration,
            _plus_minus(p.b_simple, p.b_simple_stderr),
            _number(p.b_simple_smoothed),
            f"{p.grad_norm_sq:.3g}",
            f"{p.trace_sigma:.3g}",
            "-" if math.isnan(p.val_loss) else f"{p.val_loss:.4f}",
        ]
        for p in shown
    ]
    lines.append(
        text_table(
            ["epoch", "iteration", "B_simple", "smoothed", "|G|^2", "tr(Sigma)", "val loss"], rows
        )
    )
    lines.append("")
    middle = points[len(points) // 2]
    lines.append(
        "B_simple at the start / middle / end of training: "
        + " / ".join(
            _plus_minus(p.b_simple, p.b_simple_stderr) for p in (points[0], middle, points[-1])
        )
    )
    if result.status == "diverged":
        lines.append(
            f"training diverged at iteration {result.diverged_at}: the last measurements are "
            "not meaningful"
        )
    elif result.status != "done":
        lines.append(f"training {result.status}: the last measurements are not meaningful")
    critical = result.critical_batch_size
    if math.isfinite(critical):
        regime = (
            "below it: larger batches would still cut the number of steps almost in proportion"
            if result.batch_size < critical
            else "above it: larger batches buy few fewer steps"
        )
        lines.append(
            f"critical batch size ~ {_number(critical)} (the smoothed B_simple at the end; it "
            f"grows as the loss falls); training at batch {result.batch_size} is {regime}"
        )
    else:
        lines.append("critical batch size: not measured (|G|^2 estimated at or below zero)")
    return "\n".join(lines)


def _measured(point: NoisePoint) -> bool:
    """Whether a measurement saw finite gradients (|G|^2 and tr(Sigma) are numbers)."""
    return math.isfinite(point.grad_norm_sq) and math.isfinite(point.trace_sigma)


def _number(value: float) -> str:
    if math.isnan(value):
        return "-"  # not measured (a data-parallel check with no even step since the last)
    return f"{value:.3g}" if math.isfinite(value) else "inf"


def _plus_minus(value: float, stderr: float) -> str:
    if not math.isfinite(value):
        return _number(value)
    return f"{value:.3g} ± {stderr:.2g}" if math.isfinite(stderr) else f"{value:.3g}"
