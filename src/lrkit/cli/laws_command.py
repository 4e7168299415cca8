"""``lrkit laws``: a ladder of sizes (widths or depths), horizons and batch sizes, each point's
best learning rate from its band of near-best runs, the laws in them with their intervals
(``laws.analysis``), the forecast for a larger model or longer run, the held-out checks, and
whether the best lr moves with width at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lrkit.cli.laws_options import (
    check_point_grid,
    check_run,
    check_shape,
    check_targets,
    engine_request,
    laws_outputs,
    parse_list,
    size_ladder,
)
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
    parse_fraction,
)
from lrkit.cli.output import Outputs, notes, write_ending
from lrkit.cli.progress import on_interrupt, progress
from lrkit.cli.report_command import ReportOption
from lrkit.laws.settings import LawsSettings

if TYPE_CHECKING:
    from lrkit.laws.analysis import LawsAnalysis
    from lrkit.laws.driver import LawsEvents, LawsRun
    from lrkit.report.laws_section import LawEntry
    from lrkit.report.page import Section
    from lrkit.sweep.engines.registry import EngineRequest
    from lrkit.sweep.runner import SweepEvents

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
    axis, sizes, predict_size = size_ladder(widths, depths, predict_width, predict_depth)
    check_targets(axis, predict_size, predict_examples, predict_epochs, predict_batch_size)
    horizons = parse_list("--epochs", epochs, float)
    batch_sizes = parse_list("--batch-size", batch_size, int)
    set_sizes = None if examples is None else parse_list("--examples", examples, int)
    check_optimizer(optimizer, momentum, weight_decay)
    check_point_grid(lr, octaves, per_octave, repeats)
    request = engine_request(engine, workers, address)
    check_run(device, seed, check_transfer, axis)
    fraction = parse_fraction("val_fraction", val_fraction)
    outputs = laws_outputs(store, json_file, plot, report_file)
    settings = LawsSettings(
        model=model,
        sizes=sizes,
        axis=axis,
        epochs=horizons,
        batch_sizes=batch_sizes,
        examples=set_sizes,
        predict_size=predict_size,
        predict_examples=predict_examples,
        predict_epochs=predict_epochs,
        predict_batch_size=predict_batch_size,
        data=data or str(data_dir or "mnist"),
        loss=loss or "cross_entropy",
        val_fraction=fraction,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
        seed=seed,
        lr=lr,
        octaves=octaves,
        per_octave=per_octave,
        repeats=repeats,
        branch=branch,
        store=store,
        name=name,
        device=device,
        check_transfer=check_transfer,
    )
    check_shape(settings)
    found = laws_run(settings, request, data, data_dir, loss)
    print(
        summary(
            found.rungs, found.ladder, found.analysis, found.coordinates, found.center, lr is None
        )
    )
    write_outputs(found, settings, outputs)


def laws_run(
    settings: LawsSettings,
    request: EngineRequest,
    data: str | None,
    data_dir: Path | None,
    loss: str | None,
) -> LawsRun:
    """The workload loaded (--data or --data-dir, --loss), and the driver run on it, its notes
    on stderr and its runs' progress on a bar."""
    from lrkit.laws.driver import run_laws
    from lrkit.workload import load_workload

    work = load_workload(settings.model, data, data_dir, loss, settings.val_fraction, notes("laws"))
    return run_laws(work, settings, request, terminal_events(settings.store))


def terminal_events(store: Path) -> LawsEvents:
    """Notes on stderr; Ctrl-C during the ladder says the store keeps its finished runs; a
    bar over the runs."""
    from lrkit.laws.driver import LawsEvents

    return LawsEvents(
        on_note=notes("laws"),
        storing=lambda: on_interrupt(
            lambda: f"finished runs are kept in {store}: run again to resume"
        ),
        trials=runs_bar,
    )


@contextmanager
def runs_bar() -> Iterator[SweepEvents]:
    """A progress bar over each family's runs (restarted as each family starts)."""
    from lrkit.sweep.runner import SweepEvents

    with progress() as bar:
        done = [0]

        def on_trial_start(key: Any, index: int, total: int) -> None:
            if index == 0:
                bar.start("runs", total, key="runs")
                done[0] = 0

        def on_trial_end(key: Any, outcome: Any) -> None:
            done[0] += 1
            bar.update(done[0], f"lr {key.lr:.3g}: {outcome.status}", key="runs")

        yield SweepEvents(on_trial_start=on_trial_start, on_trial_end=on_trial_end)


def write_outputs(found: LawsRun, settings: LawsSettings, outputs: Outputs) -> None:
    """--json, --plot and --report through the verbs' one ending."""
    write_ending(
        outputs,
        document=lambda: document(
            found.rungs, found.ladder, found.analysis, found.coordinates, found.center
        ),
        figure=lambda path: draw(found.analysis, path),
        page=lambda: _page(found, settings),
    )


def _page(found: LawsRun, settings: LawsSettings) -> tuple[list[Section], str]:
    from lrkit.report.build import build_report

    sections = build_report(
        laws=report_entries(found.analysis), law_rungs=rung_rows(found.rungs, found.ladder)
    )
    return sections, f"Learning-rate laws for {settings.model}."


def report_entries(analysis: LawsAnalysis) -> list[LawEntry]:
    """Each law for the report: its name, fit, held-out check, forecast (where it made one)
    and the quantity it predicts."""
    forecasts = {}
    if analysis.forecast is not None:
        forecasts = {analysis.forecast.lr_law: analysis.forecast.lr}
        if analysis.forecast.batch_law is not None and analysis.forecast.batch_size:
            forecasts[analysis.forecast.batch_law] = analysis.forecast.batch_size
    return [
        (law.spec.name, law.fit, law.held_out, forecasts.get(law.spec.name), law.spec.quantity)
        for law in analysis.laws
    ]


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
