"""``lrkit noise``: the gradient noise scale B_simple over a training run, and the critical
batch size it gives (McCandlish et al. 2018)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    check_device,
    check_optimizer,
    parse_fraction,
)
from lrkit.cli.output import (
    Outputs,
    check_result_outputs,
    format_number,
    notes,
    on_each_rank,
    text_table,
    write_ending,
)
from lrkit.cli.progress import progress
from lrkit.noise import ESTIMATORS

if TYPE_CHECKING:
    import torch

    from lrkit.noise.tracking import NoisePoint, NoiseRun, NoiseSettings

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
    settings = _tracking_settings(lr, batch_size, epochs, measure_every, examples, estimator, seed)
    check_optimizer(optimizer, momentum, weight_decay)
    check_device(device)
    fraction = parse_fraction("val_fraction", val_fraction)
    outputs = check_result_outputs(json_file, plot)
    from lrkit.noise.on_workload import WorkloadNoiseRun, track_workload
    from lrkit.workload import WorkloadSource

    source = WorkloadSource(model, data, data_dir, loss, fraction)
    run = WorkloadNoiseRun(source, settings, optimizer, momentum, weight_decay)

    def measure(target: torch.device, main: bool) -> NoiseRun:
        return track_workload(run, target, notes("noise", main), lambda: _epochs_bar(main, epochs))

    on_each_rank(device, outputs, measure, lambda result: _report(result, outputs))


def _tracking_settings(
    lr: float,
    batch_size: int,
    epochs: float,
    measure_every: float | None,
    examples: int | None,
    estimator: str,
    seed: int,
) -> NoiseSettings:
    """The training and measurements, checked: --epochs first, as the default
    --measure-every follows it."""
    from lrkit.noise.tracking import MEASURE_EVERY, NoiseSettings

    check.budget_epochs("epochs", epochs)
    return NoiseSettings(
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


@contextmanager
def _epochs_bar(drawn: bool, epochs: float) -> Iterator[Callable[[NoisePoint], None]]:
    """A progress bar over the epochs, drawn where ``drawn`` (rank 0) and stderr is a
    terminal, with the last B_simple."""
    with progress(None if drawn else False) as bar:
        bar.start("epochs", epochs)
        yield lambda p: bar.update(p.epoch, f"B_simple {p.b_simple:.3g}")


def _report(result: NoiseRun, outputs: Outputs) -> None:
    print(summary(result))
    figure = (lambda path: _plot(result, path)) if result.points else None
    write_ending(outputs, document=result.to_json, figure=figure)


def _plot(result: NoiseRun, path: Path) -> None:
    from lrkit.plots.noise import plot_noise_scale

    plot_noise_scale(result, path)


def summary(result: NoiseRun) -> str:
    """What ``lrkit noise`` prints: the run, its measurements through training, and the
    critical batch size they give."""
    return "\n".join([_heading(result), "", *_findings(result)])


def _heading(result: NoiseRun) -> str:
    return (
        f"gradient noise scale: {result.model} on {result.data}, batch size {result.batch_size}"
        + (
            f" ({result.batch_size // result.world_size} per rank x {result.world_size} ranks)"
            if result.world_size > 1
            else ""
        )
        + f", lr {format_number(result.lr)}, {result.estimator} estimator "
        f"({result.examples_per_measurement} examples a measurement), {result.seconds:.1f} s"
    )


def _findings(result: NoiseRun) -> list[str]:
    """The measurements' table, B_simple through training, how the training ended and the
    critical batch size; or why nothing was measured."""
    points = result.points
    if not points:
        return [f"no measurement: training {result.status} before the first check"]
    if result.status == "diverged" and not any(_measured(p) for p in points):
        return [
            f"training diverged at iteration {result.diverged_at}, so no noise scale was "
            "measured: the gradients were not finite from the start, before any step; check "
            "the model, the data and the loss"
        ]
    middle = points[len(points) // 2]
    through = "B_simple at the start / middle / end of training: " + " / ".join(
        _plus_minus(p.b_simple, p.b_simple_stderr) for p in (points[0], middle, points[-1])
    )
    return [_points_table(points), "", through, *_ending(result), _critical(result)]


def _points_table(points: Sequence[NoisePoint]) -> str:
    """At most about 12 measurements, evenly spaced, the last always."""
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
    header = ["epoch", "iteration", "B_simple", "smoothed", "|G|^2", "tr(Sigma)", "val loss"]
    return text_table(header, rows)


def _ending(result: NoiseRun) -> list[str]:
    """A line where the training did not end as planned."""
    if result.status == "diverged":
        return [
            f"training diverged at iteration {result.diverged_at}: the last measurements are "
            "not meaningful"
        ]
    if result.status != "done":
        return [f"training {result.status}: the last measurements are not meaningful"]
    return []


def _critical(result: NoiseRun) -> str:
    critical = result.critical_batch_size
    if not math.isfinite(critical):
        return "critical batch size: not measured (|G|^2 estimated at or below zero)"
    regime = (
        "below it: larger batches would still cut the number of steps almost in proportion"
        if result.batch_size < critical
        else "above it: larger batches buy few fewer steps"
    )
    return (
        f"critical batch size ~ {_number(critical)} (the smoothed B_simple at the end; it "
        f"grows as the loss falls); training at batch {result.batch_size} is {regime}"
    )


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
