"""``lrkit sweep``: train every (lr, batch size, repeat) trial into a resumable store, then
report the best lr per batch size, the fit of lr* against batch size, and the figures."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
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
    check_optimizer,
    parse_fraction,
)
from lrkit.cli.output import check_output_file, check_outputs, format_number, text_table, write_json
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
    from lrkit.scaling import PowerLawFit
    from lrkit.sweep.analysis import BestLr
    from lrkit.sweep.store import StoredTrial
    from lrkit.workload import TrainData

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
    work: Any,
    device: str,
    engine: EngineRequest,
    verb: str = "sweep",
) -> tuple[list[StoredTrial], int]:
    """Check the plan, open the store, run what is missing with progress bars; the trials and
    how many of them ran now (the rest came from the store).

    Bars: trials finished, and epochs trained summed over the trials (stacks of trials train
    side by side in the vectorized engine)."""
    from lrkit.sweep.engines.registry import EngineChoice
    from lrkit.sweep.runner import SweepEvents, run_sweep
    from lrkit.sweep.store import Store
    from lrkit.sweep.trials import SweepPlan, check_plan
    from lrkit.training.device import resolve_device

    target = resolve_device(device)
    plan = SweepPlan(name, definition, grid)
    check_plan(plan, work, target)
    # Ray is reached before the store is touched: an address it cannot reach writes nothing.
    with engine.session(), progress() as bar, Store.open(store_path) as store:
        epochs_done: dict[TrialKey, float] = {}
        ran: list[TrialKey] = []

        def on_engine(choice: EngineChoice) -> None:
            if choice.reason is not None:
                how = "one trial per Ray task" if choice.remote else "one trial at a time"
                print(f"lrkit {verb}: {how}: {choice.reason}", file=sys.stderr)

        def on_trial_start(key: TrialKey, index: int, total: int) -> None:
            if index == 0:
                bar.start("trials", total, key="trials")
                bar.start("epochs", total * definition.epochs, key="epochs")
            epochs_done[key] = 0.0

        def on_check(key: TrialKey, point: Any, done: float, total: float) -> None:
            epochs_done[key] = done
            status = f"batch {key.batch_size}, lr {key.lr:g}: val acc {point.val_accuracy:.4f}"
            bar.update(sum(epochs_done.values()), status, key="epochs")

        def on_trial_end(key: TrialKey, outcome: Any) -> None:
            ran.append(key)
            epochs_done[key] = definition.epochs
            bar.update(
                len(ran), f"batch {key.batch_size}, lr {key.lr:g}: {outcome.status}", key="trials"
            )

        events = SweepEvents(
            on_trial_start=on_trial_start,
            on_check=on_check,
            on_trial_end=on_trial_end,
            on_engine=on_engine,
        )
        trials = run_sweep(store, plan, work, target, events, engine)
    return trials, len(ran)


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
    from lrkit.sweep.store import Store

    total = sum(len(grid) for grid in grids.values())
    finished = 0
    if store_path.is_file():
        with Store.open(store_path, create=False) as store:
            for name, grid in grids.items():
                keys = set(grid)
                finished += sum(t.key in keys for t in store.trials(name, with_points=False))
    return (
        f"{finished} of {total} trials finished and kept in {store_path}; run the same "
        "command again to resume"
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
    lrs = parse_grid("--lr", lr, float)
    sizes = parse_grid("--batch-size", batch_size, int)
    grid = product_grid(lrs, sizes, check.positive_int("repeats", repeats))
    check.budget_epochs("epochs", epochs)  # first: the default --eval-every follows it
    if eval_every is None:
        eval_every = check.default_between_checks(EVAL_EVERY, epochs)
    check.epochs_between_checks("eval_every", eval_every, epochs)
    check_optimizer(optimizer, momentum, weight_decay)
    check.seed("seed", seed)
    check.choice("metric", metric, ("final", "best"))
    check.choice("device", device, ("auto", "cpu", "cuda"))
    check_engine(engine)
    check_workers(workers, engine)
    check_output_file("--store", store)
    check_store_path(store, writing=True, must_exist=False)
    from lrkit.plots.sweep import FIGURES

    outputs = check_outputs(
        [("--json", json_file), ("--report", report_file)],
        folder=("--plot-dir", plot_dir, FIGURES),
        others=[("--store", store)],
        kept=trials_safe_in(store),
    )
    check_address(engine, address)
    fraction = parse_fraction("val_fraction", val_fraction)
    from lrkit.workload import load_workload

    work = load_workload(
        model,
        data,
        data_dir,
        loss,
        fraction,
        notify=lambda m: print(f"lrkit sweep: {m}", file=sys.stderr),
    )
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
        trials, ran = execute(
            name, definition, grid, store, work, device, EngineRequest(engine, workers, address)
        )
        val_size = len(work.val) if work.val is not None else None
        best, fit, text = report(trials, metric, val_size)
        other = "best" if metric == "final" else "final"
        from lrkit.sweep.analysis import best_lr_by_batch_size

        from_store = len(trials) - ran
        shown = f"sweep {quoted(name)} in {store}"
        print(f"{shown}: {len(trials)} trials, {ran} run now, {from_store} stored")
        print(text)
        with on_interrupt(outputs.interrupted):
            if json_file is not None:
                document = summary_json(
                    trials, best, best_lr_by_batch_size(trials, other, val_size), fit
                )
                with outputs.writing("--json", json_file):
                    write_json(json_file, document)
            if report_file is not None:
                from lrkit.report.build import StoreSweeps, build_report, write_report

                sections = build_report(StoreSweeps(store, name, val_size))
                with outputs.writing("--report", report_file):
                    write_report(report_file, sections, f"Sweep {quoted(name)} in {store}.")
                print(f"wrote {report_file}", file=sys.stderr)
            if plot_dir is not None:
                from lrkit.plots.sweep import write_sweep_figures

                with outputs.writing("--plot-dir", plot_dir):
                    written = write_sweep_figures(trials, best, fit, plot_dir)
                for path in written:
                    print(f"wrote {path}", file=sys.stderr)
    failures = failed_trials_line(trials, store)
    if failures is not None:
        print(f"lrkit sweep: error: {failures}", file=sys.stderr)
        return 1
    return 0
