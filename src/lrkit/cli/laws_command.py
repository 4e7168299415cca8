"""``lrkit laws``: a ladder of sizes (widths or depths), horizons and batch sizes, each point's
best learning rate from its band of near-best runs, the laws in them with their intervals
(``laws.analysis``), the forecast for a larger model or longer run, the held-out checks, and
whether the best lr moves with width at all."""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lrkit import validation as check
from lrkit.cli.laws_output import document, rung_rows, summary
from lrkit.cli.options import (
    DataDirOption,
    DataOption,
    DeviceOption,
    LossOption,
    MomentumOption,
    OptimizerOption,
    ValFractionOption,
    WeightDecayOption,
    check_optimizer,
    check_workers,
    parse_fraction,
)
from lrkit.cli.output import check_output_file, check_outputs, write_json
from lrkit.cli.progress import on_interrupt, progress
from lrkit.cli.report_command import ReportOption
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.sweep.store_schema import check_path as check_store_path

if TYPE_CHECKING:
    from lrkit.laws.analysis import LawsAnalysis, Target
    from lrkit.laws.ladder import SizeFactory
    from lrkit.laws.points import Ladder
    from lrkit.laws.transfer import CoordinateCheck
    from lrkit.sweep.definition import SweepDefinition

HELP = "\n\n".join(
    [
        "Predict the best learning rate (and batch size) of a larger model or a longer run from "
        "a ladder of small ones, with intervals, and check the prediction before trusting it.",
        "--model module:factory is called with the size as its one argument: the width "
        "(--widths) or the depth (--depths). The ladder is every combination of the sizes, "
        "the horizons (--epochs 1,2,4 or --examples 3000,6000,12000: the first n training "
        "examples) and the batch sizes (--batch-size 32,64,128). At each point a sweep (one "
        "store, resumable) trains a geometric lr grid (--per-octave points an octave, "
        "--octaves each side of --lr, by default the range test's suggestion at the smallest "
        "size), grown by an octave where the best runs touch its end; --repeats seeds at each "
        "lr widen the band to their noise. Each group's optimum is the centre of its runs within "
        "0.25% of its best final validation loss (Step Law's band).",
        "Laws: eta*(width or depth) for a size ladder; eta*(D) for a horizon ladder (D = "
        "examples x epochs); Step Law's eta*(N, D) and DeepSeek's eta*(C), C = 6 N D, for "
        "both; with batch sizes also B*(D), B*(C) or B*(N, D), and eta*(B) at fixed N, D. "
        "Each with 90% intervals, the form (power or log-quadratic) and the law that predicts "
        "chosen by leave-one-out error, checked by predicting the largest group from the "
        "others. --predict-width/--predict-depth/--predict-epochs/--predict-examples/"
        "--predict-batch-size say where to predict (the ladder's largest value for the rest; "
        "a batch size only where --batch-size is laddered alone), N there counted on "
        "PyTorch's meta device, never built; warnings when an interval is wider than a "
        "factor of 2 or the target lies far out. No interval is narrower than the lr grid "
        "resolves an optimum.",
        "Horizon ladders with --epochs train one run per lr and branch each shorter horizon "
        "off it (exact where the schedule's start is shared: none, or --schedule "
        "wsd:cooldown_fraction=0.2).",
        "Transfer: the size exponent's interval says whether the best lr moves with width "
        "(muP promises it does not); --check-transfer also runs the coordinate check (each "
        "layer's activation size against width after a few steps: flat under muP).",
        "Example: lrkit laws --model mymodels:mlp --widths 32,64,128,256 --predict-width 1024 "
        "--optimizer adam --batch-size 128 --epochs 2 --store laws.sqlite --json laws.json",
    ]
)


def parse_list(option: str, text: str | None, kind: type) -> tuple[Any, ...] | None:
    """A comma-separated ladder of positive values (None when not given)."""
    from lrkit.sweep.definition import parse_grid

    return None if text is None else tuple(sorted(parse_grid(option, text, kind)))


def laws(
    model: Annotated[
        str,
        typer.Option(help="The model family: module:factory, called with the size."),
    ],
    widths: Annotated[
        str | None, typer.Option(help="The ladder's widths, comma-separated.")
    ] = None,
    depths: Annotated[
        str | None, typer.Option(help="The ladder's depths (instead of --widths).")
    ] = None,
    predict_width: Annotated[
        int | None, typer.Option(help="The width to predict the best lr of.")
    ] = None,
    predict_depth: Annotated[
        int | None, typer.Option(help="The depth to predict the best lr of.")
    ] = None,
    predict_epochs: Annotated[
        float | None, typer.Option(help="The horizon to predict at (epochs).")
    ] = None,
    predict_examples: Annotated[
        int | None, typer.Option(help="The training examples to predict at.")
    ] = None,
    predict_batch_size: Annotated[
        int | None, typer.Option(help="The batch size to predict the best lr at.")
    ] = None,
    data: DataOption = None,
    data_dir: DataDirOption = None,
    loss: LossOption = None,
    optimizer: OptimizerOption = "adam",
    momentum: MomentumOption = 0.9,
    weight_decay: WeightDecayOption = 0.0,
    batch_size: Annotated[
        str, typer.Option(help="Training batch size, or a ladder of them (32,64,128).")
    ] = "128",
    epochs: Annotated[
        str, typer.Option(help="Epochs each run trains, or a ladder of horizons (1,2,4).")
    ] = "2",
    examples: Annotated[
        str | None,
        typer.Option(help="A ladder of training-set sizes (the first n examples; default all)."),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr", help="Centre of the lr grid (default: the range test at the smallest size)."
        ),
    ] = None,
    octaves: Annotated[int, typer.Option(help="Octaves of the grid each side of --lr.")] = 2,
    per_octave: Annotated[int, typer.Option(help="Grid points an octave.")] = 4,
    repeats: Annotated[
        int,
        typer.Option(help="Seeds at each lr (their mean loss; the band widened to their noise)."),
    ] = 1,
    schedule: Annotated[
        str | None,
        typer.Option(
            help="lr schedule NAME[:k=v,...] of every run, e.g. wsd:cooldown_fraction=0.2."
        ),
    ] = None,
    branch: Annotated[
        bool,
        typer.Option(
            "--branch/--no-branch",
            help="Branch the horizons of an --epochs ladder off one run per lr (sequential "
            "engine; exact, fewer steps).",
        ),
    ] = True,
    val_fraction: ValFractionOption = "1/12",
    store: Annotated[Path, typer.Option(help="The sweep store (SQLite), resumable.")] = Path(
        "laws.sqlite"
    ),
    name: Annotated[str, typer.Option(help="Prefix of the points' sweep names.")] = "laws",
    engine: Annotated[
        str, typer.Option(help="auto, sequential, vectorized or ray (as lrkit sweep).")
    ] = "auto",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: one per core).")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (with --engine ray).")
    ] = None,
    device: DeviceOption = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the weights and the data order.")] = 0,
    check_transfer: Annotated[
        bool, typer.Option("--check-transfer", help="Also run the coordinate check.")
    ] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the result.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write the figure of the laws (PNG, SVG or PDF).")
    ] = None,
    report_file: ReportOption = None,
) -> None:
    from lrkit.laws.analysis import Target, analyse, check_ladder, check_target_batch
    from lrkit.laws.points import Ladder

    if (widths is None) == (depths is None):
        raise LrkitValueError("give the ladder's sizes as --widths or --depths (one of them)")
    axis = "width" if widths is not None else "depth"
    sizes = parse_list(f"--{axis}s", widths if widths is not None else depths, int)
    assert sizes is not None
    predict_size = predict_width if axis == "width" else predict_depth
    other = predict_depth if axis == "width" else predict_width
    if other is not None:
        raise LrkitValueError(
            f"--predict-{'depth' if axis == 'width' else 'width'}: the ladder is of {axis}s; "
            f"give --predict-{axis}"
        )
    check_targets(axis, predict_size, predict_examples, predict_epochs, predict_batch_size)
    horizons = parse_list("--epochs", epochs, float)
    batch_sizes = parse_list("--batch-size", batch_size, int)
    set_sizes = parse_list("--examples", examples, int)
    assert horizons is not None and batch_sizes is not None
    check_optimizer(optimizer, momentum, weight_decay)
    if lr is not None:
        check.positive_float("lr", lr)
    check_point_grid(octaves, per_octave, repeats)
    check.choice("engine", engine, ("auto", "sequential", "vectorized", "ray"))
    workers = check_workers(workers, engine)
    if engine == "ray":
        from lrkit.sweep.engines.ray import require_ray

        require_ray(address)
    check.choice("device", device, ("auto", "cpu", "cuda"))
    check.seed("seed", seed)
    if check_transfer and axis != "width":
        raise LrkitValueError("--check-transfer: the coordinate check needs a --widths ladder")
    fraction = parse_fraction("val_fraction", val_fraction)
    if plot is not None:
        from lrkit.plots.figure import check_plot_path

        check_plot_path(plot)
    check_output_file("--store", store)
    check_store_path(store, writing=True, must_exist=False)
    outputs = check_outputs(
        [("--json", json_file), ("--plot", plot), ("--report", report_file)],
        others=[("--store", store)],
        kept=f"finished runs are kept in {store}: run again to write it",
    )
    # The ladder's shape is checked before any data is loaded (its examples filled in below).
    shape = Ladder(sizes, set_sizes or (1,), horizons, batch_sizes, axis)
    check_ladder(shape)
    check_target_batch(shape, predict_batch_size)

    from lrkit.data.tensors import TensorData
    from lrkit.imports import load_object
    from lrkit.laws.ladder import run_ladder
    from lrkit.laws.parameters import check_counts, ladder_counts
    from lrkit.sweep.definition import SweepDefinition
    from lrkit.training.device import resolve_device
    from lrkit.workload import load_workload

    work = load_workload(
        model,
        data,
        data_dir,
        loss,
        fraction,
        notify=lambda m: print(f"lrkit laws: {m}", file=sys.stderr),
    )
    if not isinstance(work.train, TensorData) or work.val is None:
        raise LrkitValueError("--data: lrkit laws needs tensor data with a validation part")
    n_train = len(work.train)
    for option, values in (("examples", set_sizes or ()), ("batch_size", batch_sizes)):
        if values and max(values) > n_train:
            raise InvalidParameterError(
                option, f"at most the training examples ({n_train})", max(values)
            )
    # Every run of the ladder trains at least one optimizer step and at most MAX_STEPS: the
    # shortest horizon on the fewest examples in the largest batches, the longest on the most
    # in the smallest.
    examples_at = set_sizes or (n_train,)
    check.budget_steps("epochs", min(horizons), min(examples_at), max(batch_sizes))
    check.budget_steps("epochs", max(horizons), max(examples_at), min(batch_sizes))
    ladder = Ladder(sizes, set_sizes or (n_train,), horizons, batch_sizes, axis)
    factory = size_factory(load_object(model, "--model"), model, axis)
    counts = ladder_counts(factory, sizes)
    check_counts(counts, model, axis)
    target = None
    if any(
        v is not None for v in (predict_size, predict_epochs, predict_examples, predict_batch_size)
    ):
        target = forecast_target(
            factory,
            counts,
            ladder,
            model,
            Target(
                predict_size or max(sizes),
                0,
                predict_examples or max(ladder.examples),
                predict_epochs or max(horizons),
                predict_batch_size,
            ),
        )
    target_device = resolve_device(device)
    smallest = ladder.points()[0]
    definition = SweepDefinition(
        model=model,
        data=data or str(data_dir or "mnist"),
        loss=loss or "cross_entropy",
        epochs=max(horizons),
        eval_every=min(horizons) / 4,
        val_fraction=float(fraction),
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
        batch_size_schedule=None,
        seed=seed,
    )
    from lrkit.laws.branching import run_branched
    from lrkit.sweep.engines.ray import ray_session
    from lrkit.sweep.runner import SweepEvents
    from lrkit.sweep.store import Store

    branching = branch and "epochs" in ladder.varies
    if branching and engine not in ("auto", "sequential"):
        print(
            f"lrkit laws: --engine {engine}: the horizons train from scratch on it (branching "
            "runs on the sequential engine; --no-branch says so)",
            file=sys.stderr,
        )
        branching = False
    check_resumable(store, ladder, definition, name)
    center = (
        lr
        if lr is not None
        else range_test_center(
            factory,
            smallest.size,
            replace(work, train=work.train.head(smallest.examples)),
            optimizer,
            momentum,
            weight_decay,
            smallest.batch_size,
            smallest.epochs,
            seed,
        )
    )
    with (
        on_interrupt(lambda: f"finished runs are kept in {store}: run again to resume"),
        ray_session(address) if engine == "ray" else contextlib.nullcontext(),
        progress() as bar,
        Store.open(store) as opened,
    ):
        done = [0]

        def on_trial_start(key: Any, index: int, total: int) -> None:
            if index == 0:
                bar.start("runs", total, key="runs")
                done[0] = 0

        def on_trial_end(key: Any, outcome: Any) -> None:
            done[0] += 1
            bar.update(done[0], f"lr {key.lr:.3g}: {outcome.status}", key="runs")

        rungs = run_ladder(
            factory,
            ladder,
            work,
            definition,
            opened,
            center_lr=center,
            octaves=octaves,
            per_octave=per_octave,
            repeats=repeats,
            name=name,
            device=target_device,
            engine=engine,
            workers=workers,
            address=address,
            events=SweepEvents(on_trial_start=on_trial_start, on_trial_end=on_trial_end),
            horizons=run_branched if branching else None,
        )
    analysis = analyse(rungs, ladder, target, seed=seed)
    coordinates = None
    if check_transfer:
        coordinates = run_coordinate_check(
            factory, sizes, work, optimizer, center, momentum, weight_decay, min(batch_sizes)
        )
    print(summary(rungs, ladder, analysis, coordinates, center, lr is None))
    with on_interrupt(outputs.interrupted):
        if json_file is not None:
            with outputs.writing("--json", json_file):
                write_json(json_file, document(rungs, ladder, analysis, coordinates, center))
        if plot is not None:
            with outputs.writing("--plot", plot):
                draw(analysis, plot)
            print(f"wrote {plot}", file=sys.stderr)
        if report_file is not None:
            from lrkit.report.build import build_report, write_report

            forecasts = {}
            if analysis.forecast is not None:
                forecasts = {analysis.forecast.lr_law: analysis.forecast.lr}
                if analysis.forecast.batch_law is not None and analysis.forecast.batch_size:
                    forecasts[analysis.forecast.batch_law] = analysis.forecast.batch_size
            entries = [
                (
                    law.spec.name,
                    law.fit,
                    law.held_out,
                    forecasts.get(law.spec.name),
                    law.spec.quantity,
                )
                for law in analysis.laws
            ]
            sections = build_report(laws=entries, law_rungs=rung_rows(rungs, ladder))
            with outputs.writing("--report", report_file):
                write_report(report_file, sections, f"Learning-rate laws for {model}.")
            print(f"wrote {report_file}", file=sys.stderr)


def check_resumable(store: Path, ladder: Ladder, definition: SweepDefinition, name: str) -> None:
    """An existing --store opened, and each sweep of the ladder it holds checked against the
    ladder's definition, before any training (the range test included); a new store is
    created only when the ladder starts, so that a refusal before then leaves nothing."""
    from lrkit.laws.ladder import point_definition
    from lrkit.sweep.store import Store

    if not store.exists():
        return
    with Store.open(store) as opened:
        for point in ladder.points():
            opened.check_definition(
                ladder.sweep_name(name, point), point_definition(definition, ladder, point)
            )


def check_targets(
    axis: str,
    size: int | None,
    examples: int | None,
    epochs: float | None,
    batch_size: int | None,
) -> None:
    """The --predict-* options given, each in its range."""
    from lrkit.advise.settings import MAX_EPOCHS
    from lrkit.batchsize.settings import MAX_BATCH_SIZE
    from lrkit.laws.points import MAX_EXAMPLES, check_size

    if size is not None:
        check_size(f"predict_{axis}", size)
    if examples is not None:
        check.int_in("predict_examples", examples, 1, MAX_EXAMPLES, "training examples")
    if epochs is not None:
        check.float_in("predict_epochs", epochs, 0.0, MAX_EPOCHS, low_open=True, high_open=False)
    if batch_size is not None:
        check.int_in("predict_batch_size", batch_size, 1, MAX_BATCH_SIZE)


def check_point_grid(octaves: int, per_octave: int, repeats: int) -> None:
    """--octaves and --per-octave in their ranges, and --repeats such that a point's grid,
    widened as far as it may be, holds no more trials than a sweep runs."""
    from lrkit.laws.ladder import MAX_WIDENINGS, check_grid
    from lrkit.sweep.definition import check_grid_size

    octaves, per_octave = check_grid(octaves, per_octave)
    repeats = check.positive_int("repeats", repeats)
    lrs = (2 * octaves + MAX_WIDENINGS) * per_octave + 1
    check_grid_size(lrs * repeats, f"{lrs} lrs of a widened grid x {repeats} --repeats")


def forecast_target(
    factory: SizeFactory, counts: dict[int, int], ladder: Ladder, model: str, asked: Target
) -> Target:
    """The target the --predict-* options ask for, its N counted without building the model
    (``laws.parameters.target_count``), saying so on stderr where it is extrapolated."""
    from lrkit.laws.parameters import target_count

    count = target_count(factory, counts, asked.size, model, ladder.axis)
    if count.extrapolated:
        print(
            f"lrkit laws: N at {ladder.axis} {asked.size} is {count.parameters}, extrapolated "
            f"as {count.extrapolated}",
            file=sys.stderr,
        )
    return replace(asked, parameters=count.parameters, extrapolated=count.extrapolated)


def draw(analysis: LawsAnalysis, path: Path) -> None:
    """--plot: the law that predicts the lr (the optima against its first variable, the fit,
    its band, the forecast and the held-out group) beside every law's held-out check."""
    from lrkit.plots.figure import pyplot, save
    from lrkit.plots.laws import plot_held_out, plot_law

    law = analysis.chosen("lr")
    assert law is not None
    forecast = analysis.forecast
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(13, 5), layout="constrained")
    plot_law(
        law.fit,
        prediction=forecast.lr if forecast is not None else None,
        held_out=law.held_out,
        ax=left,
    )
    checks = [(other.spec.name, other.held_out) for other in analysis.laws if other.held_out]
    if checks:
        plot_held_out(checks, ax=right)
    else:
        right.set_axis_off()
    save(fig, path)


def size_factory(factory: object, spec: str, axis: str) -> Any:
    """``size -> nn.Module`` from the user's factory, its failures as one-line errors."""
    from lrkit.workload import built_model

    if not callable(factory):
        raise LrkitValueError(f"--model {spec} is not callable: give a function of the {axis}")
    return lambda size: built_model(factory, spec, size, where=f" at {axis} {size}")


def range_test_center(
    factory: SizeFactory,
    size: int,
    work: Any,
    optimizer: str,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    epochs: float,
    seed: int,
) -> float:
    """The range test's suggestion for the model at ``size`` (the ladder's smallest), over the
    budget's steps; the model is initialised as the ladder's seed-``seed`` runs are (the global
    RNG seeded inside, left as it was), so the grid's centre does not depend on what ran
    before."""
    from lrkit.advise.driver import budget_range_test
    from lrkit.advise.settings import AdviseSettings
    from lrkit.laws.ladder import at_size

    settings = AdviseSettings(
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
    )
    steps = math.ceil(epochs * math.ceil(len(work.train) / batch_size))
    net = at_size(factory, size)(seed)
    found = budget_range_test(net, work.train, work.val, settings, work.loss_fn, steps)
    suggested = found.suggested_or_least
    if suggested is None:
        raise LrkitValueError(
            "the range test at the smallest width suggested no learning rate (the loss never "
            "fell): give --lr"
        )
    return float(suggested)


def run_coordinate_check(
    factory: Any,
    ladder: tuple[int, ...],
    work: Any,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
) -> CoordinateCheck:
    from lrkit.laws.transfer import coordinate_check
    from lrkit.training.optimizers import make_optimizer

    return coordinate_check(
        factory,
        lambda net: make_optimizer(optimizer, net, lr, momentum, weight_decay),
        ladder,
        work.train,
        work.loss_fn,
        batch_size=min(batch_size, len(work.train)),
    )
