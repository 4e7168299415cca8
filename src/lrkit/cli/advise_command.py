"""``lrkit advise``: the learning rate that trains best in the budget, raced, not read off a
curve."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lrkit import validation as check
from lrkit.advise.settings import (
    CEILING_METHODS,
    DEFAULT_EPOCHS,
    MAX_CANDIDATES,
    AdviseSettings,
)
from lrkit.batchsize.settings import DEFAULT_MIN_BATCH_SIZE, MAX_BATCH_SIZE
from lrkit.cli.advise_output import summary
from lrkit.cli.options import (
    DataDirOption,
    DataOption,
    DeviceOption,
    LossOption,
    ModelOption,
    MomentumOption,
    OptimizerArgsOption,
    RecipeOptimizerOption,
    ValFractionOption,
    WeightDecayOption,
    WorkersOption,
    check_device,
    check_optimizer,
    parse_bytes,
    parse_fraction,
)
from lrkit.cli.output import Outputs, check_outputs, notes, write_result
from lrkit.cli.progress import on_interrupt, progress
from lrkit.cli.report_command import ReportOption
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.schedules.recipe import Recipe
from lrkit.sweep.engines.registry import check_address, check_engine, check_workers

if TYPE_CHECKING:
    from lrkit.advise.on_workload import RaceWorkload
    from lrkit.advise.result import Advice, FinishedRun
    from lrkit.batchsize.settings import BatchSettings

HELP = "\n\n".join(
    [
        "Race the range test's candidates on your budget and advise the learning rate that "
        "trains best in it.",
        "A range test (an exponential sweep, the loss of held-out examples measured at every "
        "lr) proposes candidates: a ladder from half to four times the default rule's "
        "suggestion, and the other rules' suggestions near it. They race by successive "
        "halving: all train to 1/6 of --epochs, the better half goes on to 1/2, where the "
        "best wins, each going on from its own checkpoint. While the leader at 1/6 is the "
        "largest candidate (or all are within noise), a larger one joins; while it is the "
        "smallest, a smaller one does. Trials of one rung run side by side (stacked on the "
        "vectorized engine for sgd and momentum, else one per process on a CPU core). With "
        "adam and adamw at a constant lr the advice is the winner scaled to the full budget, "
        "x sqrt(1/2): their best constant lr falls as one over the square root of the "
        "training time.",
        "Every candidate trains your recipe: --schedule over the budget after a --warmup "
        "share, the advised lr its peak; --optimizer takes module:Class with "
        "--optimizer-args. --finish trains the advice on to the full budget (--save-model "
        "writes it). The advice is labelled confident or unsure, with the reasons.",
        "Without --batch-size it chooses the batch size first: the largest that fits (probed "
        "on CUDA, estimated from --memory on a CPU), the step time at each size from "
        "--min-batch-size doubling, and the gradient noise scale (for a target, where a run "
        "at a safe lr reaches it; else after half an epoch) give "
        "McCandlish et al.'s (2018) prediction for the budget: --target VALUE (reach it "
        "soonest), --time SECONDS (the best metric in that much training) or --epochs (the "
        "best from that many epochs). The learning rate is then raced at the predicted size "
        "and at half and twice it, and the measured outcome decides.",
        "The metric: accuracy for integer class labels, else the validation loss (--metric).",
        "Example: lrkit advise --epochs 10 --batch-size 64 --optimizer adamw --schedule cosine "
        "--warmup 0.05 --finish --save-model model.pt --json advice.json; "
        "lrkit advise --metric accuracy --target 0.95 --epochs 10 --json advice.json",
    ]
)


def advise(
    model: ModelOption = "mnist-mlp",
    data: DataOption = None,
    data_dir: DataDirOption = None,
    loss: LossOption = None,
    epochs: Annotated[
        float, typer.Option(help="The training budget the advice is for, in epochs.")
    ] = DEFAULT_EPOCHS,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Examples per step, fixed; leave it out and advise chooses it for the budget "
            "(--epochs, --time or --target) from the step times, memory and noise scale."
        ),
    ] = None,
    target: Annotated[
        float | None,
        typer.Option(
            help="Choose the batch size that reaches this validation metric soonest (e.g. "
            "--metric accuracy --target 0.95); --epochs is the races' budget (they decide "
            "at half of it)."
        ),
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option("--time", help="Choose the batch size that trains best in this many seconds."),
    ] = None,
    min_batch_size: Annotated[
        int | None,
        typer.Option(
            help=f"The smallest batch size considered; the others double from it (default "
            f"{DEFAULT_MIN_BATCH_SIZE})."
        ),
    ] = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option(help="The largest batch size considered (default: the largest that fits)."),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option(
            help="Memory training may use on a CPU, e.g. 4GiB (default: half the available)."
        ),
    ] = None,
    ceiling: Annotated[
        str | None,
        typer.Option(
            help="How the largest batch that fits is found: auto (probe on CUDA, estimate "
            "from memory elsewhere; the default), probe or memory. Chosen batch sizes stay "
            "under it; a --batch-size over it trains as micro-batches (--accumulate)."
        ),
    ] = None,
    accumulate: Annotated[
        int | None,
        typer.Option(
            help="With --batch-size: micro-batches each batch trains in (gradient "
            "accumulation: the same steps at a fraction of the memory). Default: as few as "
            "the memory allows, 1 where the batch fits."
        ),
    ] = None,
    metric: Annotated[
        str, typer.Option(help="auto (accuracy for class labels, else loss), accuracy or loss.")
    ] = "auto",
    candidates: Annotated[
        int, typer.Option(help=f"Learning rates raced at most (2 .. {MAX_CANDIDATES}).")
    ] = 6,
    val_fraction: ValFractionOption = "1/12",
    optimizer: RecipeOptimizerOption = "sgd",
    optimizer_args: OptimizerArgsOption = None,
    momentum: MomentumOption = 0.9,
    weight_decay: WeightDecayOption = 0.0,
    schedule: Annotated[
        str | None,
        typer.Option(
            help="The run's lr schedule, NAME[:k=v,...] as lrkit sweep --schedule takes it "
            "(e.g. cosine, linear, wsd:cooldown_fraction=0.2), over the whole budget after "
            "the warm-up; every candidate trains under it and the advised lr is its peak. "
            "Default: a constant lr."
        ),
    ] = None,
    warmup: Annotated[
        float,
        typer.Option(help="Share of the budget warmed up linearly from 0 to the peak, in [0, 1)."),
    ] = 0.0,
    finish: Annotated[
        bool,
        typer.Option(
            "--finish",
            help="Train the advised lr on to the full budget (from the race's checkpoint of "
            "the winner where it is the advice): the answer comes with the trained model.",
        ),
    ] = False,
    save_model: Annotated[
        Path | None,
        typer.Option(
            help="With --finish: write the trained model as torch.save({'model': "
            "state_dict, 'optimizer': state_dict})."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the initial weights and the data order of every trial.")
    ] = 0,
    device: DeviceOption = "auto",
    engine: Annotated[
        str,
        typer.Option(
            help="auto (vectorized when the optimizer and model allow), sequential, "
            "vectorized, or ray (the rungs' trials as Ray tasks; pip install 'lrkit[ray]')."
        ),
    ] = "auto",
    workers: WorkersOption = None,
    address: Annotated[
        str | None,
        typer.Option(help="With --engine ray: the Ray cluster (default: start a local instance)."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Figure of the race and the range test (.png, .svg or .pdf)."),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the advice as JSON.")
    ] = None,
    report_file: ReportOption = None,
) -> None:
    race = _race_settings(
        epochs,
        batch_size,
        min_batch_size,
        (optimizer, optimizer_args, momentum, weight_decay),
        (schedule, warmup, finish),
        metric,
        seed,
        candidates,
        engine,
        workers,
        (memory, ceiling, accumulate),
    )
    batch = batch_settings(race, batch_size, target, time_budget, min_batch_size, max_batch_size)
    check_device(device)
    check_address(engine, address)
    fraction = parse_fraction("val_fraction", val_fraction)
    outputs = _outputs(json_file, plot, report_file, save_model, finish)

    from lrkit.advise.on_workload import load_race_workload
    from lrkit.training.device import resolve_device
    from lrkit.workload import WorkloadSource

    source = WorkloadSource(model, data, data_dir, loss, fraction)
    work = load_race_workload(source, resolve_device(device), notes("advise"))
    if batch is not None:
        from lrkit.cli.advise_batch import run_batch_advice

        run_batch_advice(work, batch, address, outputs)
        return
    advice = _race(work, race, address, outputs)
    if advice.engine_reason is not None:
        notes("advise")(f"one trial a process: {advice.engine_reason}")
    print(summary(advice))
    write_result(outputs, advice)
    if save_model is not None and advice.finished is not None:
        save_finished(outputs, save_model, advice.finished)


def _race_settings(
    epochs: float,
    batch_size: int | None,
    min_batch_size: int | None,
    optimizer_options: tuple[str, str | None, float, float],
    recipe_options: tuple[str | None, float, bool],
    metric: str,
    seed: int,
    candidates: int,
    engine: str,
    workers: int | None,
    memory_options: tuple[str | None, str | None, int | None],
) -> AdviseSettings:
    """The race's settings, checked (the optimizer's, the recipe's and the engine's options
    first); its batch size the smallest considered where the batch size is to be chosen."""
    optimizer, optimizer_args, momentum, weight_decay = optimizer_options
    schedule, warmup, finish = recipe_options
    memory, ceiling, accumulate = memory_options
    if ceiling is not None:
        check.choice("ceiling", ceiling, CEILING_METHODS)
    if accumulate is not None and batch_size is None:
        raise LrkitValueError(
            "--accumulate is for a --batch-size that does not fit: the batch sizes advise "
            "chooses fit whole"
        )
    if accumulate is not None and batch_size is not None:
        check.int_in("accumulate", accumulate, 1, batch_size, "the batch size")
        if batch_size % accumulate:
            raise InvalidParameterError(
                "accumulate", f"a divisor of the batch size ({batch_size})", accumulate
            )
    check_optimizer(optimizer, momentum, weight_decay, optimizer_args, paths=True)
    Recipe(schedule, warmup).check()
    if finish and batch_size is None:
        raise LrkitValueError(
            "--finish trains the advised lr for --epochs at one batch size: give --batch-size "
            "(--target and --time give no length to train to)"
        )
    check_engine(engine)
    smallest = (
        DEFAULT_MIN_BATCH_SIZE
        if min_batch_size is None
        else check.int_in("min_batch_size", min_batch_size, 1, MAX_BATCH_SIZE)
    )
    return AdviseSettings(
        epochs=epochs,
        batch_size=smallest if batch_size is None else batch_size,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        optimizer_args=optimizer_args,
        schedule=schedule,
        warmup=warmup,
        finish=finish,
        metric=metric,
        seed=seed,
        candidates=candidates,
        engine=engine,
        workers=check_workers(workers, engine),
        accumulation_steps=accumulate,
        memory=None if memory is None else parse_bytes("memory", memory),
        ceiling=ceiling or "auto",
    )


def _outputs(
    json_file: Path | None,
    plot: Path | None,
    report_file: Path | None,
    save_model: Path | None,
    finish: bool,
) -> Outputs:
    """--json, --plot, --report and --save-model, each checked writable before any work;
    --save-model only with --finish (there is no model to save without it)."""
    if save_model is not None and not finish:
        raise LrkitValueError("--save-model writes the model --finish trains: add --finish")
    if plot is not None:
        from lrkit.plots.figure import check_plot_path

        check_plot_path(plot)
    return check_outputs(
        [
            ("--json", json_file),
            ("--plot", plot),
            ("--report", report_file),
            ("--save-model", save_model),
        ]
    )


def save_finished(outputs: Outputs, path: Path, finished: FinishedRun) -> None:
    """The trained model and optimizer, as ``torch.save({"model": ..., "optimizer": ...})``."""
    import torch

    from lrkit.atomic import replacing

    if finished.state is None:
        notes("advise")(f"--save-model: the finishing run {finished.status}; nothing saved")
        return
    state = {"model": finished.state.model, "optimizer": finished.state.optimizer}
    with outputs.writing("--save-model", path) as target, replacing(target) as file:
        torch.save(state, file)


def _race(
    work: RaceWorkload, settings: AdviseSettings, address: str | None, outputs: Outputs
) -> Advice:
    """The race, with a progress bar over the most it can train (every candidate, every
    rung, and the finishing run)."""
    from lrkit.advise.on_workload import advise_workload
    from lrkit.advise.plan import race_plan, trial_epochs

    most = trial_epochs(race_plan(settings.epochs, settings.candidates), settings.candidates)
    most += settings.epochs if settings.finish else 0.0  # the finishing run, at most
    with progress() as bar, on_interrupt(outputs.interrupted):
        bar.start("race (trial-epochs)", most)
        trained: dict[float, float] = {}

        def on_check(lr: float, point: object, done: float) -> None:
            trained[lr] = done
            bar.update(sum(trained.values()), f"lr {lr:.3g}")

        advice = advise_workload(work, settings, on_check, address)
        bar.finish()
    return advice


def batch_settings(
    race: AdviseSettings,
    batch_size: int | None,
    target: float | None,
    time_budget: float | None,
    min_batch_size: int | None,
    max_batch_size: int | None,
) -> BatchSettings | None:
    """The batch-size part's settings, or None where --batch-size fixes the size (and the
    options for choosing it, given with it, are refused rather than ignored)."""
    from lrkit.batchsize.settings import BatchSettings

    if batch_size is not None:
        for budget, value in (("--target", target), ("--time", time_budget)):
            if value is not None:
                raise LrkitValueError(
                    f"{budget} is a budget for choosing the batch size: leave out --batch-size"
                )
        choosing: tuple[tuple[str, object], ...] = (
            ("--min-batch-size", min_batch_size),
            ("--max-batch-size", max_batch_size),
        )
        for option, given in choosing:
            if given is not None:
                raise LrkitValueError(
                    f"{option} is for choosing the batch size, which --batch-size fixes: "
                    "leave out one of them"
                )
        return None
    if target is not None and time_budget is not None:
        raise LrkitValueError("give one budget: --target or --time, not both")
    mode = "target" if target is not None else "time" if time_budget is not None else "epochs"
    return BatchSettings(
        mode=mode,
        target=target,
        time=time_budget,
        min_batch_size=race.batch_size,
        max_batch_size=max_batch_size,
        race=race,
    )
