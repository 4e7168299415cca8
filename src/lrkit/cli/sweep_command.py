"""``lrkit sweep``: train every (lr, batch size, repeat) trial into a resumable store, then
report the best lr per batch size, the fit of lr* against batch size, and the figures."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    WorkersOption,
    check_device,
    check_optimizer,
    parse_fraction,
)
from lrkit.cli.output import (
    Outputs,
    check_output_file,
    check_outputs,
    format_number,
    notes,
    text_table,
    write_ending,
)
from lrkit.cli.progress import on_interrupt, progress
from lrkit.cli.report_command import ReportOption
from lrkit.errors import quoted
from lrkit.sweep.definition import (
    SweepDefinition,
    TrialKey,
    make_definition,
    parse_grid,
    product_grid,
)
from lrkit.sweep.engines.registry import (
    EngineRequest,
    check_address,
    check_engine,
    check_workers,
)
from lrkit.sweep.store_schema import check_path as check_store_path

if TYPE_CHECKING:
    from lrkit.report.page import Section
    from lrkit.scaling import PowerLawFit
    from lrkit.sweep.analysis import BestLr
    from lrkit.sweep.engines.registry import EngineChoice
    from lrkit.sweep.runner import SweepEvents
    from lrkit.sweep.store import StoredTrial
    from lrkit.workload import TrainData, Workload

EVAL_EVERY = 0.5
"""Epochs between checks unless told otherwise: the textbook's half epoch."""

HELP = "\n\n".join(
    [
        "Train every learning rate x batch size (x repeat) trial; find the best lr per batch size.",
        "Each trial starts from the same initial weights per repeat and a seeded data order; a "
        "check every --eval-every epochs records the training loss and the validation loss and "
        "accuracy; the test accuracy is measured at the end. Defaults follow the textbook: 30 "
        "epochs, validation = 1/12 of the training data, a check every half epoch, plain SGD.",
        "Results go to --store (SQLite), one transaction per finished trial: run the same "
        "command again to resume after a crash; finished trials are not run again.",
        "Example: lrkit sweep --lr 0.1,0.3,0.5,0.7 --batch-size 16,32,128 --store runs.sqlite",
    ]
)


def execute(
    name: str,
    definition: SweepDefinition,
    grid: tuple[TrialKey, ...],
    store_path: Path,
    work: Workload,
    device: str,
    engine: EngineRequest,
    verb: str = "sweep",
) -> tuple[list[StoredTrial], int]:
    """Run the sweep into the store with progress bars (``sweep.driver.sweep_into_store``);
    the trials and how many of them ran now (the rest came from the store)."""
    from lrkit.sweep.driver import sweep_into_store
    from lrkit.sweep.trials import SweepPlan

    ran: list[TrialKey] = []
    plan = SweepPlan(name, definition, grid)
    trials = sweep_into_store(
        plan, store_path, work, device, engine, lambda: _trial_bars(definition.epochs, verb, ran)
    )
    return trials, len(ran)


@contextmanager
def _trial_bars(epochs: float, verb: str, ran: list[TrialKey]) -> Iterator[SweepEvents]:
    """Progress bars: trials finished (each appended to ``ran``), and epochs trained summed
    over the trials (stacks of trials train side by side in the vectorized engine); a note
    where the engine is not the one asked for."""
    from lrkit.sweep.runner import SweepEvents

    with progress() as bar:
        epochs_done: dict[TrialKey, float] = {}

        def on_engine(choice: EngineChoice) -> None:
            if choice.reason is not None:
                how = "one trial per Ray task" if choice.remote else "one trial at a time"
                notes(verb)(f"{how}: {choice.reason}")

        def on_trial_start(key: TrialKey, index: int, total: int) -> None:
            if index == 0:
                bar.start("trials", total, key="trials")
                bar.start("epochs", total * epochs, key="epochs")
            epochs_done[key] = 0.0

        def on_check(key: TrialKey, point: Any, done: float, total: float) -> None:
            epochs_done[key] = done
            status = f"batch {key.batch_size}, lr {key.lr:g}: val acc {point.val_accuracy:.4f}"
            bar.update(sum(epochs_done.values()), status, key="epochs")

        def on_trial_end(key: TrialKey, outcome: Any) -> None:
            ran.append(key)
            epochs_done[key] = epochs
            bar.update(
                len(ran), f"batch {key.batch_size}, lr {key.lr:g}: {outcome.status}", key="trials"
            )

        yield SweepEvents(
            on_trial_start=on_trial_start,
            on_check=on_check,
            on_trial_end=on_trial_end,
            on_engine=on_engine,
        )


def report(
    trials: list[StoredTrial], metric: str, val_size: int | None
) -> tuple[dict[int, BestLr], PowerLawFit | None, str]:
    """Best lr per batch size, the fit, and the text that says so. A batch size where no
    trial finished has no best lr (its "winner" would be an lr that diverged like the rest):
    it is left out of the best lrs and the fit, and the table says what happened there."""
    from lrkit.sweep.analysis import best_lr_by_batch_size, fit_best

    unfinished = unfinished_sizes(trials)
    every = best_lr_by_batch_size(trials, metric, val_size)
    best = {b: w for b, w in every.items() if b not in unfinished}
    fit = fit_best(best)
    rows: list[list[str | int | float]] = []
    for size, winner in every.items():
        if size in unfinished:
            rows.append([size, "-", unfinished[size], "-", "-"])
            continue
        runner = winner.runner_up
        noise = "-" if winner.within_noise is None else ("yes" if winner.within_noise else "no")
        rows.append(
            [
                size,
                format_number(winner.lr),
                f"{winner.mean:.4f} ± {winner.std:.4f}",
                "-" if runner is None else f"{runner.lr:g} ({runner.mean:.4f})",
                noise,
            ]
        )
    lines = [
        f"best learning rate by batch size ({metric} validation accuracy, "
        "mean ± std over repeats):",
        text_table(["batch size", "best lr", "accuracy", "runner-up", "within noise"], rows),
        "",
    ]
    if trials and diverged_from_the_start(trials):
        smallest = min(t.lr for t in trials)
        lines.append(
            "every trial diverged at its first check: the training loss was not finite from "
            f"the start, at every learning rate (the smallest, {format_number(smallest)}, "
            "too); check the model, the data and the loss"
        )
    else:
        lines += [
            f"batch size {size}: {said}, so it has no best lr"
            + ("; try smaller learning rates" if said == EVERY_TRIAL_DIVERGED else "")
            for size, said in unfinished.items()
        ]
    if fit is None:
        lines.append("fit: needs two batch sizes or more with two learning rates or more each")
    else:
        lines.append(f"fit: {fit.describe()}")
    return best, fit, "\n".join(lines)


EVERY_TRIAL_DIVERGED = "every trial diverged"


def failed_trials_line(trials: list[StoredTrial], store_path: Path) -> str | None:
    """One line on the trials whose training raised (the sweep went on without them), or
    None when none did."""
    failed = [t for t in trials if t.status == "failed"]
    if not failed:
        return None
    first = failed[0]
    return (
        f"{len(failed)} of {len(trials)} trials failed (first: batch {first.batch_size}, "
        f"lr {format_number(first.lr)}: {first.error}); they are recorded as failed in "
        f"{store_path} and run again when the same command runs again"
    )


def unfinished_sizes(trials: list[StoredTrial]) -> dict[int, str]:
    """The batch sizes where no trial finished training, each with what happened there:
    ``EVERY_TRIAL_DIVERGED``, or no trial finished (some failed)."""
    groups: dict[int, list[StoredTrial]] = {}
    for trial in trials:
        groups.setdefault(trial.batch_size, []).append(trial)
    return {
        size: EVERY_TRIAL_DIVERGED
        if all(t.status == "diverged" for t in group)
        else "no trial finished"
        for size, group in sorted(groups.items())
        if all(t.status != "done" for t in group)
    }


def diverged_from_the_start(trials: list[StoredTrial]) -> bool:
    """Whether every trial diverged before its first check had a point to record (its curve
    holds the check before training only): then no learning rate is to blame."""
    return all(t.status == "diverged" and len(t.points) <= 1 for t in trials)


def summary_json(
    trials: list[StoredTrial],
    best: dict[int, BestLr],
    best_by_best: dict[int, BestLr],
    fit: PowerLawFit | None,
) -> dict[str, Any]:
    """The ``--json`` document. A batch size where no trial finished has a null best lr and
    says whether every trial diverged there."""
    unfinished = unfinished_sizes(trials)

    def by_size(winners: dict[int, BestLr]) -> dict[str, Any]:
        entries: dict[int, dict[str, Any]] = {
            b: {"lr": None, "every_trial_diverged": said == EVERY_TRIAL_DIVERGED}
            for b, said in unfinished.items()
        }
        entries.update(
            {
                b: {**w.to_json(), "every_trial_diverged": False}
                for b, w in winners.items()
                if b not in unfinished
            }
        )
        return {str(b): entries[b] for b in sorted(entries)}

    return {
        "trials": [t.to_json() for t in trials],
        "best_lr_by_batch_size": by_size(best),
        "best_lr_by_batch_size_best_accuracy": by_size(best_by_best),
        "diverged_from_the_start": bool(trials) and diverged_from_the_start(trials),
        "fit": None if fit is None else fit.to_json(),
    }


def trials_kept(store_path: Path, grids: Mapping[str, Sequence[TrialKey]]) -> str:
    """What Ctrl-C leaves of sweeps (name -> grid) into ``store_path``: the trials finished
    so far, committed one by one as they ended."""
    from lrkit.sweep.driver import finished_trials

    total = sum(len(grid) for grid in grids.values())
    return (
        f"{finished_trials(store_path, grids)} of {total} trials finished and kept in "
        f"{store_path}; run the same command again to resume"
    )


def check_budget(epochs: float, train: TrainData, batch_sizes: Sequence[int]) -> None:
    """Every trial trains at least one optimizer step (at the largest batch size an epoch
    has the fewest) and at most ``validation.MAX_STEPS`` (at the smallest the most). Sizes
    larger than the training set are left to the plan's check, which refuses them."""
    from lrkit.data.tensors import TensorData

    if not isinstance(train, TensorData):
        return
    fitting = [b for b in batch_sizes if b <= len(train)]
    if fitting:
        check.budget_steps("epochs", epochs, len(train), max(fitting))
        check.budget_steps("epochs", epochs, len(train), min(fitting))


def trials_safe_in(store_path: Path) -> str:
    """What an output that fails at the end leaves: the trials, committed as they ended."""
    return f"the trials are kept in {store_path}: run the same command again to write it"


def sweep(
    lr: Annotated[str, typer.Option("--lr", help="Learning rates, comma-separated.")],
    batch_size: Annotated[str, typer.Option("--batch-size", help="Batch sizes, comma-separated.")],
    store: Annotated[
        Path, typer.Option(help="SQLite results store (created if new; resumed if it exists).")
    ],
    repeats: Annotated[
        int, typer.Option(help="Repeats of every trial (initial weights seed + repeat).")
    ] = 1,
    epochs: Annotated[float, typer.Option(help="Epochs per trial.")] = 30.0,
    eval_every: Annotated[
        float | None,
        typer.Option(help="Epochs between checks (default 0.5, or the epochs of a shorter run)."),
    ] = None,
    val_fraction: ValFractionOption = "1/12",
    schedule: Annotated[
        str | None,
        typer.Option(
            help="lr schedule NAME[:k=v,...]; the trial's lr is its base_lr (max_lr for one_cycle)."
        ),
    ] = None,
    batch_size_schedule: Annotated[
        str | None,
        typer.Option(
            help="Batch-size growth factor=F,milestones=E1,E2[,max_batch_size=M] (epochs)."
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="Sweep name inside the store.")] = "default",
    model: ModelOption = "mnist-mlp",
    data: DataOption = None,
    data_dir: DataDirOption = None,
    loss: LossOption = None,
    optimizer: OptimizerOption = "sgd",
    momentum: MomentumOption = 0.9,
    weight_decay: WeightDecayOption = 0.0,
    seed: Annotated[
        int, typer.Option(help="Seed of the initial weights and data order (plus the repeat).")
    ] = 0,
    device: DeviceOption = "auto",
    engine: Annotated[
        str,
        typer.Option(
            help="auto (vectorized when the model and optimizer allow), sequential, "
            "vectorized (trials of one batch size as one stacked model), or ray (those "
            "stacks, or single trials, as Ray tasks; pip install 'lrkit[ray]')."
        ),
    ] = "auto",
    workers: WorkersOption = None,
    address: Annotated[
        str | None,
        typer.Option(help="With --engine ray: the Ray cluster (default: start a local instance)."),
    ] = None,
    metric: Annotated[
        str, typer.Option(help="Rank by final or best validation accuracy.")
    ] = "final",
    plot_dir: Annotated[
        Path | None, typer.Option(help="Write the figures into this folder.")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the summary as JSON.")
    ] = None,
    report_file: ReportOption = None,
) -> int:
    grid, sizes, eval_every = _check_grid(lr, batch_size, repeats, epochs, eval_every)
    check_optimizer(optimizer, momentum, weight_decay)
    check.seed("seed", seed)
    check.choice("metric", metric, ("final", "best"))
    check_device(device)
    check_engine(engine)
    check_workers(workers, engine)
    outputs = _check_store_and_outputs(store, json_file, report_file, plot_dir)
    check_address(engine, address)
    fraction = parse_fraction("val_fraction", val_fraction)
    from lrkit.workload import WorkloadSource

    work = WorkloadSource(model, data, data_dir, loss, fraction).load(notes("sweep"))
    check_budget(epochs, work.train, sizes)
    definition = make_definition(
        model,
        work.data_name,
        loss,
        epochs,
        eval_every,
        fraction,
        optimizer,
        momentum,
        weight_decay,
        schedule,
        batch_size_schedule,
        seed,
    )
    with on_interrupt(lambda: trials_kept(store, {name: grid})):
        request = EngineRequest(engine, workers, address)
        trials, ran = execute(name, definition, grid, store, work, device, request)
        val_size = len(work.val) if work.val is not None else None
        best, fit, text = report(trials, metric, val_size)
        shown = f"sweep {quoted(name)} in {store}"
        print(f"{shown}: {len(trials)} trials, {ran} run now, {len(trials) - ran} stored")
        print(text)
        write_ending(
            outputs,
            document=lambda: _document(trials, best, fit, metric, val_size),
            page=lambda: _page(store, name, val_size),
            figures=lambda folder: _figures(trials, best, fit, folder),
        )
    failures = failed_trials_line(trials, store)
    if failures is not None:
        print(f"lrkit sweep: error: {failures}", file=sys.stderr)
        return 1
    return 0


def _check_grid(
    lr: str, batch_size: str, repeats: int, epochs: float, eval_every: float | None
) -> tuple[tuple[TrialKey, ...], tuple[int, ...], float]:
    """The grid (and its batch sizes) and the epochs between checks, checked: --epochs
    before the default --eval-every, which follows it."""
    lrs = parse_grid("--lr", lr, float)
    sizes = parse_grid("--batch-size", batch_size, int)
    grid = product_grid(lrs, sizes, check.positive_int("repeats", repeats))
    check.budget_epochs("epochs", epochs)
    if eval_every is None:
        eval_every = check.default_between_checks(EVAL_EVERY, epochs)
    check.epochs_between_checks("eval_every", eval_every, epochs)
    return grid, sizes, eval_every


def _check_store_and_outputs(
    store: Path, json_file: Path | None, report_file: Path | None, plot_dir: Path | None
) -> Outputs:
    """--store a store that can be written (or made), then the outputs, none of them the
    store."""
    check_output_file("--store", store)
    check_store_path(store, writing=True, must_exist=False)
    from lrkit.plots.sweep import FIGURES

    return check_outputs(
        [("--json", json_file), ("--report", report_file)],
        folder=("--plot-dir", plot_dir, FIGURES),
        others=[("--store", store)],
        kept=trials_safe_in(store),
    )


def _document(
    trials: list[StoredTrial],
    best: dict[int, BestLr],
    fit: PowerLawFit | None,
    metric: str,
    val_size: int | None,
) -> dict[str, Any]:
    """The ``--json`` document, with the best lrs by the other metric too."""
    from lrkit.sweep.analysis import best_lr_by_batch_size

    other = "best" if metric == "final" else "final"
    return summary_json(trials, best, best_lr_by_batch_size(trials, other, val_size), fit)


def _page(store: Path, name: str, val_size: int | None) -> tuple[list[Section], str]:
    from lrkit.report.build import StoreSweeps, build_report

    return build_report(StoreSweeps(store, name, val_size)), f"Sweep {quoted(name)} in {store}."


def _figures(
    trials: list[StoredTrial], best: dict[int, BestLr], fit: PowerLawFit | None, folder: Path
) -> list[Path]:
    from lrkit.plots.sweep import write_sweep_figures

    return write_sweep_figures(trials, best, fit, folder)
