"""``lrkit reproduce``: the textbook's learning-rate x batch-size experiment in one command."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lrkit import validation as check
from lrkit.atomic import write_text
from lrkit.cli.options import (
    DataDirOption,
    DeviceOption,
    EngineOption,
    ValFractionOption,
    WorkersOption,
    check_device,
    parse_fraction,
)
from lrkit.cli.output import (
    Outputs,
    check_output_file,
    check_outputs,
    notes,
    text_table,
    write_ending,
)
from lrkit.cli.progress import on_interrupt
from lrkit.cli.report_command import ReportOption
from lrkit.cli.sweep_command import (
    execute,
    report,
    summary_json,
    trials_kept,
    trials_safe_in,
)
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.experiments.textbook import GRIDS, all_pairs, grid_trials, judge
from lrkit.sweep.definition import SweepDefinition, TrialKey, make_definition, pairs_grid
from lrkit.sweep.engines.names import LOCAL_ENGINES
from lrkit.sweep.engines.registry import EngineRequest, check_engine, check_workers
from lrkit.sweep.store_schema import check_path as check_store_path

if TYPE_CHECKING:
    from lrkit.experiments.batch_size_demo import Arm, ArmResult, DemoPlan
    from lrkit.experiments.textbook import Verdict
    from lrkit.report.page import Section
    from lrkit.scaling import PowerLawFit
    from lrkit.sweep.analysis import BestLr
    from lrkit.sweep.store import StoredTrial
    from lrkit.workload import Workload

HELP = "\n\n".join(
    [
        "Run the textbook's grids with mnist-mlp on MNIST, draw its figures, and check its claims.",
        "Grids: batch 128 x lr {0.2, 0.3, 0.5, 0.8}; lr 0.5 x batch {32, 64, 128, 256}; batch 32 x "
        "lr {0.1, 0.3, 0.5, 0.7}; batch 16 x lr {0.1, 0.3, 0.5, 0.7}; 30 epochs (trials shared "
        "between grids run once). --quick runs 2 epochs, for a demonstration.",
        "Resumable: results go to OUT/reproduce.sqlite (or --store).",
        "--bs-schedule runs, instead of the grids, Smith et al.'s (2018) comparison: lr 0.5 at "
        "batch 16 divided by 5 at 1/3 and 2/3 of the epochs, against the batch multiplied by 5 "
        "at the same epochs (same examples seen); writes OUT/bs-schedule.png, "
        "OUT/bs-schedule.md and the number of updates each needed (store: "
        "OUT/bs-schedule.sqlite).",
    ]
)


EVAL_EVERY = 0.5
"""Epochs between checks: the textbook's, every half epoch."""

HEATMAP, FIT, SUMMARY = "heatmap.png", "best-lr-fit.png", "summary.md"
"""Files in --out besides each grid's figure (``SLUG.png``); the fit's only where there is one."""
BS_FIGURE, BS_SUMMARY = "bs-schedule.png", "bs-schedule.md"
"""Files in --out with --bs-schedule."""


def files_in_out(bs_schedule: bool, default_store: Path | None) -> tuple[str, ...]:
    """The names of the files reproduce may write into --out, the store's when it is there."""
    grids = (*(f"{g.slug}.png" for g in GRIDS), HEATMAP, FIT, SUMMARY)
    names = (BS_FIGURE, BS_SUMMARY) if bs_schedule else grids
    return names + ((default_store.name,) if default_store is not None else ())


def check_epochs(epochs: float) -> float:
    """--epochs: long enough for a check, at most ``MAX_CHECKS`` checks a trial. Reproduce has
    no --eval-every (it checks every half epoch, as the textbook does), so the bound is said
    in its epochs."""
    return check.float_in(
        "epochs",
        epochs,
        EVAL_EVERY,
        EVAL_EVERY * check.MAX_CHECKS,
        low_open=False,
        high_open=False,
        why=f"reproduce checks every {EVAL_EVERY:g} epochs, at most {check.MAX_CHECKS} times",
    )


def reproduce(
    quick: Annotated[bool, typer.Option("--quick", help="2 epochs instead of 30.")] = False,
    bs_schedule: Annotated[
        bool,
        typer.Option(
            "--bs-schedule",
            help="Decay the lr or increase the batch size (Smith et al. 2018), not the grids.",
        ),
    ] = False,
    out: Annotated[Path, typer.Option(help="Folder for the figures, summary and store.")] = Path(
        "lrkit-reproduce"
    ),
    store: Annotated[
        Path | None,
        typer.Option(
            help="Results store (default: OUT/reproduce.sqlite; OUT/bs-schedule.sqlite with "
            "--bs-schedule)."
        ),
    ] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Epochs per trial (default 30; 2 with --quick).")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Repeats of every trial.")] = 1,
    data_dir: DataDirOption = None,
    val_fraction: ValFractionOption = "1/12",
    seed: Annotated[int, typer.Option(help="Seed of the initial weights and data order.")] = 0,
    device: DeviceOption = "auto",
    engine: EngineOption = "auto",
    workers: WorkersOption = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the summary as JSON.")
    ] = None,
    report_file: ReportOption = None,
) -> None:
    started = time.perf_counter()
    epochs = epochs if epochs is not None else (2.0 if quick else 30.0)
    fraction = _check_options(
        device, engine, workers, seed, val_fraction, bs_schedule, repeats, epochs, report_file
    )
    store_path, outputs = _check_outputs_and_store(out, store, bs_schedule, json_file, report_file)
    from lrkit.workload import WorkloadSource

    source = WorkloadSource("mnist-mlp", None, data_dir, None, fraction)
    work = source.load(notes("reproduce"))
    run = TextbookRun(
        work, epochs, fraction, seed, store_path, device, EngineRequest(engine, workers)
    )
    if bs_schedule:
        _bs_schedule(run, out, outputs)
    else:
        _grids(run, repeats, out, outputs, started)


def _check_options(
    device: str,
    engine: str,
    workers: int | None,
    seed: int,
    val_fraction: str,
    bs_schedule: bool,
    repeats: int,
    epochs: float,
    report_file: Path | None,
) -> float:
    """The options but the outputs, checked in this order; the validation fraction."""
    check_device(device)
    check_engine(engine, LOCAL_ENGINES)
    check_workers(workers, engine)
    check.seed("seed", seed)
    fraction = parse_fraction("val_fraction", val_fraction)
    if bs_schedule:
        if repeats != 1:
            raise InvalidParameterError(
                "repeats", "1 with --bs-schedule (one trial an arm)", repeats
            )
        from lrkit.experiments.batch_size_demo import whole_epochs

        whole_epochs(epochs)
        if report_file is not None:
            raise LrkitValueError(
                f"--report belongs to the grids: --bs-schedule writes {BS_SUMMARY} into --out"
            )
    check_epochs(epochs)
    return fraction


def _check_outputs_and_store(
    out: Path,
    store: Path | None,
    bs_schedule: bool,
    json_file: Path | None,
    report_file: Path | None,
) -> tuple[Path, Outputs]:
    """The store (--store, else one in --out) and the outputs, checked writable and apart."""
    default_store = out / ("bs-schedule.sqlite" if bs_schedule else "reproduce.sqlite")
    store_path = store or default_store
    outputs = check_outputs(
        [("--json", json_file), ("--report", report_file)],
        folder=("--out", out, files_in_out(bs_schedule, None if store else default_store)),
        others=[("--store", store)],
        kept=trials_safe_in(store_path),
    )
    check_output_file("--store", store_path)
    check_store_path(store_path, writing=True, must_exist=False)
    return store_path, outputs


@dataclass(frozen=True)
class TextbookRun:
    """What the grids and the --bs-schedule arms share: mnist-mlp on MNIST trained with
    plain SGD, checked every half epoch, into one store."""

    work: Workload
    epochs: float
    val_fraction: float
    seed: int
    store: Path
    device: str
    engine: EngineRequest

    def definition(
        self, epochs: float, schedule: str | None = None, batch_size_schedule: str | None = None
    ) -> SweepDefinition:
        return make_definition(
            "mnist-mlp",
            self.work.data_name,
            None,
            epochs,
            EVAL_EVERY,
            self.val_fraction,
            "sgd",
            0.0,
            0.0,
            schedule,
            batch_size_schedule,
            self.seed,
        )

    def sweep(
        self, name: str, definition: SweepDefinition, grid: tuple[TrialKey, ...]
    ) -> tuple[list[StoredTrial], int]:
        """The sweep run into the store (``sweep_command.execute``)."""
        return execute(
            name, definition, grid, self.store, self.work, self.device, self.engine, "reproduce"
        )


def _grids(run: TextbookRun, repeats: int, out: Path, outputs: Outputs, started: float) -> None:
    """The textbook's grids: their trials, the chapter's figures and claims, the summary."""
    definition = run.definition(run.epochs)
    grid = pairs_grid(all_pairs(), check.positive_int("repeats", repeats))
    with on_interrupt(lambda: trials_kept(run.store, {"textbook": grid})):
        trials, ran = run.sweep("textbook", definition, grid)
        print(f"{len(trials)} trials, {ran} run now, {len(trials) - ran} from {run.store}")
        val_size = len(run.work.val) if run.work.val is not None else None
        best, fit, text = report(trials, "final", val_size)
        verdicts = judge(trials, val_size)
        claims = "\n".join(f"- {v.sentence()}" for v in verdicts)
        with on_interrupt(outputs.interrupted):
            with outputs.writing("--out", out):
                figures = _grid_figures(trials, best, fit, out)
                write_text(out / SUMMARY, _grids_summary(trials, run, text, claims))
            print(text)
            print()
            print("the chapter's claims:")
            print(claims)
            for path in [*figures, out / SUMMARY]:
                print(f"wrote {path}", file=sys.stderr)
            write_ending(
                outputs,
                document=lambda: _grids_document(trials, best, fit, verdicts, val_size),
                page=lambda: _grids_page(run, verdicts, val_size, started),
            )


def _grids_summary(trials: list[StoredTrial], run: TextbookRun, text: str, claims: str) -> str:
    """OUT/summary.md: the trials of repeat 0, the best lrs and the fit, the claims."""
    rows: list[list[str | int | float]] = [
        [
            t.batch_size,
            t.lr,
            t.status,
            f"{t.final_val_accuracy or 0.0:.4f}",
            f"{t.best_val_accuracy or 0.0:.4f}",
            f"{t.test_accuracy or 0.0:.4f}",
            f"{t.seconds or 0.0:.1f}",
        ]
        for t in trials
        if t.repeat == 0
    ]
    table = text_table(
        ["batch", "lr", "status", "final val acc", "best val acc", "test acc", "seconds"], rows
    )
    return (
        f"# lrkit reproduce: {len(trials)} trials, {run.epochs:g} epochs, {run.work.data_name}\n\n"
        f"```\n{table}\n```\n\n```\n{text}\n```\n\n## The chapter's claims\n\n{claims}\n"
    )


def _grids_document(
    trials: list[StoredTrial],
    best: dict[int, BestLr],
    fit: PowerLawFit | None,
    verdicts: list[Verdict],
    val_size: int | None,
) -> dict[str, Any]:
    """The sweep's ``--json`` document, with the claims' verdicts."""
    from lrkit.sweep.analysis import best_lr_by_batch_size

    by_best = best_lr_by_batch_size(trials, "best", val_size)
    document = summary_json(trials, best, by_best, fit)
    document["claims"] = [
        {"claim": v.claim.text, "verdict": v.verdict, "best_lr": v.best_lr} for v in verdicts
    ]
    return document


def _grids_page(
    run: TextbookRun, verdicts: list[Verdict], val_size: int | None, started: float
) -> tuple[list[Section], str]:
    from lrkit.report.build import StoreSweeps, build_report

    sections = build_report(
        StoreSweeps(run.store, "textbook", val_size), wall_seconds=time.perf_counter() - started
    )
    lead = (
        f"lrkit reproduce: the textbook's grids, {run.epochs:g} epochs, {run.work.data_name}. "
        "The chapter's claims: " + "; ".join(v.sentence() for v in verdicts) + "."
    )
    return sections, lead


def _grid_figures(
    trials: list[StoredTrial], best: dict[int, BestLr], fit: PowerLawFit | None, out: Path
) -> list[Path]:
    """The chapter's figures, one a grid, the heatmap and (when there is one) the fit."""
    from lrkit.plots.sweep import (
        plot_accuracy_vs_epoch,
        plot_accuracy_vs_iteration,
        plot_fit,
        plot_heatmap,
    )

    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for g in GRIDS:
        subset = grid_trials(trials, g)
        path = out / f"{g.slug}.png"
        if g.slug == "lr-0.5":
            plot_accuracy_vs_epoch(subset, 0.5, path)  # type: ignore[arg-type]
        else:
            plot_accuracy_vs_iteration(subset, path, title=g.name)  # type: ignore[arg-type]
        figures.append(path)
    figures.append(out / HEATMAP)
    plot_heatmap(trials, figures[-1])
    if fit is not None:
        figures.append(out / FIT)
        plot_fit(best, fit, figures[-1])
    return figures


def _bs_schedule(run: TextbookRun, out: Path, outputs: Outputs) -> None:
    """``--bs-schedule``: the two arms as two named sweeps of one store, their table, summary
    and figure."""
    from lrkit.data.tensors import TensorData
    from lrkit.experiments import batch_size_demo

    assert isinstance(run.work.train, TensorData)  # the MNIST files are read as tensors
    plan = batch_size_demo.plan_demo(run.epochs, len(run.work.train))
    grids = {arm.sweep: (TrialKey(arm.batch_size, arm.lr, 0),) for arm in plan.arms}
    with on_interrupt(lambda: trials_kept(run.store, grids)):
        results = [_run_arm(run, plan, arm, grids[arm.sweep]) for arm in plan.arms]
        decay, increase = results
        table = text_table(batch_size_demo.HEADER, batch_size_demo.table_rows(results))
        heading = (
            f"decay the lr or increase the batch size: {plan.epochs} epochs of "
            f"{run.work.data_name} ({plan.n_train} training examples), factor "
            f"{plan.factor:g} at {_at_milestones(plan)}"
        )
        sentence = batch_size_demo.verdict(plan, decay, increase)
        print(heading)
        print(table)
        print(sentence)
        figure, summary = out / BS_FIGURE, out / BS_SUMMARY
        with on_interrupt(outputs.interrupted):
            with outputs.writing("--out", out):
                _bs_figure(results, plan, run.work.data_name, figure)
                write_text(
                    summary,
                    f"# lrkit reproduce --bs-schedule\n\n{heading}.\n\n```\n{table}\n```\n\n"
                    f"{sentence}.\n\n![decay the lr or increase the batch size]({BS_FIGURE})\n",
                )
            for path in (figure, summary):
                print(f"wrote {path}", file=sys.stderr)
            write_ending(outputs, document=lambda: batch_size_demo.to_json(plan, decay, increase))


def _run_arm(run: TextbookRun, plan: DemoPlan, arm: Arm, grid: tuple[TrialKey, ...]) -> ArmResult:
    """One arm trained (or read from the store), said on stderr."""
    from lrkit.experiments import batch_size_demo

    definition = run.definition(plan.epochs, arm.schedule, arm.batch_size_schedule)
    (trial,), ran = run.sweep(arm.sweep, definition, grid)
    print(
        f"{arm.name}: {arm.describe()}: " + ("run now" if ran else f"from {run.store}"),
        file=sys.stderr,
    )
    return batch_size_demo.arm_result(
        arm,
        plan.n_train,
        trial.status,
        trial.points,
        trial.final_val_accuracy,
        trial.best_val_accuracy,
        trial.test_accuracy,
        trial.seconds,
    )


def _at_milestones(plan: DemoPlan) -> str:
    """``epoch 10`` or ``epochs 10, 20``."""
    steps = ", ".join(str(m) for m in plan.milestones)
    return f"{'epoch' if len(plan.milestones) == 1 else 'epochs'} {steps}"


def _bs_figure(results: list[ArmResult], plan: DemoPlan, data_name: str, path: Path) -> None:
    from lrkit.plots.batch_size import ArmCurve, plot_batch_size_schedule

    plot_batch_size_schedule(
        [ArmCurve(f"{r.arm.name}: {r.arm.describe()}", r.points) for r in results],
        plan.milestones,
        path,
        title=(
            f"{plan.epochs} epochs of {data_name.split(' (/')[0]} ({plan.n_train} training "
            f"examples): lr divided by {plan.factor:g}, or batch multiplied by {plan.factor:g}, "
            f"at {_at_milestones(plan)}"
        ),
    )
