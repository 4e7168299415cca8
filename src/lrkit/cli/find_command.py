"""``lrkit find``: the learning-rate range test, with narrowing rounds and suggestions."""

from __future__ import annotations

import dataclasses
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
from lrkit.cli.report_command import ReportOption
from lrkit.errors import LrkitValueError, quoted
from lrkit.rangetest.core import check_stopping
from lrkit.rangetest.programs import (
    DEFAULT_SEGMENTS,
    MAX_ITERATIONS,
    LrProgram,
    check_rounds,
    exponential_range,
    linear_range,
    parse_segments,
    segments_program,
)
from lrkit.rangetest.settings import CURVES, MAX_REPEATS, RangeTestSettings
from lrkit.rangetest.suggestions import DEFAULT_SUGGESTION, SUGGESTIONS
from lrkit.sweep.engines.names import LOCAL_ENGINES
from lrkit.sweep.engines.registry import check_engine
from lrkit.training.optimizers import make_optimizer

if TYPE_CHECKING:
    import torch

    from lrkit.rangetest.core import Step
    from lrkit.rangetest.result import RangeTestResult

HELP = "\n\n".join(
    [
        "Run the learning-rate range test and suggest a learning rate.",
        "With no options: the textbook's network (mnist-mlp) on MNIST (the sample shipped "
        "with lrkit unless --data-dir or LRKIT_DATA_DIR points at the full set), plain SGD at "
        "batch size 16, the textbook's stepped program (1e-4 .. 1.1, continued until the "
        "loss diverges), the loss on a fixed evaluation set at the end of every hold, two "
        "rounds (the second narrows around the first's turning point), and the figure in "
        "lrkit-find.png.",
        "A program is --segments start:stop:step@hold,... (the textbook's notation), "
        "--exp START:END:STEPS or --linear START:END:STEPS (with --hold).",
        "Data parallel: torchrun --nproc-per-node N -m lrkit find ... trains a "
        "DistributedDataParallel model (gloo on the CPU, NCCL on GPUs), --batch-size examples "
        "per rank; the loss is averaged over the ranks, rank 0 prints and writes the files.",
    ]
)


def find(
    model: ModelOption = "mnist-mlp",
    data: DataOption = None,
    data_dir: DataDirOption = None,
    loss: LossOption = None,
    batch_size: Annotated[int, typer.Option(help="Examples per iteration.")] = 16,
    segments: Annotated[
        str | None, typer.Option(help="Stepped program start:stop:step@hold,...")
    ] = None,
    exp: Annotated[
        str | None, typer.Option("--exp", help="Exponential program START:END:STEPS.")
    ] = None,
    linear: Annotated[
        str | None, typer.Option("--linear", help="Linear program START:END:STEPS.")
    ] = None,
    hold: Annotated[int, typer.Option(help="Iterations per lr for --exp and --linear.")] = 1,
    rounds: Annotated[
        int, typer.Option(help="Rounds; each narrows around the last turning point.")
    ] = 2,
    points: Annotated[int, typer.Option(help="About how many lrs a narrowed round tries.")] = 20,
    eval_size: Annotated[
        int,
        typer.Option(help="Validation examples whose loss is measured after each hold (0: none)."),
    ] = 1000,
    val_fraction: ValFractionOption = "1/12",
    curve: Annotated[
        str, typer.Option(help="Loss the suggestions read: auto, eval, mean or smoothed.")
    ] = "auto",
    suggest: Annotated[
        str, typer.Option(help="Rule for the suggested lr: " + ", ".join(SUGGESTIONS) + ".")
    ] = DEFAULT_SUGGESTION,
    optimizer: OptimizerOption = "sgd",
    momentum: MomentumOption = 0.9,
    weight_decay: WeightDecayOption = 0.0,
    smoothing: Annotated[
        float, typer.Option(help="Beta of the smoothed loss's moving average.")
    ] = 0.98,
    diverge_factor: Annotated[
        float, typer.Option(help="Stop when the smoothed loss exceeds this times its minimum.")
    ] = 4.0,
    accumulate: Annotated[
        int, typer.Option(help="Micro-batches per optimizer step (gradient accumulation).")
    ] = 1,
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (CUDA only).")] = False,
    device: DeviceOption = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the initial weights and the data order.")] = 0,
    repeats: Annotated[
        int,
        typer.Option(
            help="Runs of each round from the same weights, data orders seed .. seed+N-1; "
            "the rounds read the mean curve and each run's own suggestion is shown."
        ),
    ] = 1,
    engine: Annotated[
        str,
        typer.Option(
            help="auto (vectorized when the model, optimizer and data allow), sequential "
            "or vectorized: the repeats as one stacked model, without autograd's overhead."
        ),
    ] = "auto",
    plot: Annotated[Path | None, typer.Option(help="Figure file (.png, .svg, .pdf).")] = Path(
        "lrkit-find.png"
    ),
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Draw no figure.")] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the result as JSON.")
    ] = None,
    report_file: ReportOption = None,
) -> None:
    # Check every option before any work.
    check.positive_int("batch_size", batch_size)
    check.nonnegative_int("eval_size", eval_size)
    check.choice("curve", curve, CURVES)
    check.choice("suggest", suggest, tuple(SUGGESTIONS))
    check_optimizer(optimizer, momentum, weight_decay)
    check_stopping(smoothing, diverge_factor)
    check.int_in("repeats", repeats, 1, MAX_REPEATS, "the vectorized engine's largest stack")
    check_engine(engine, LOCAL_ENGINES)
    check.seed("seed", seed)
    fraction = parse_fraction("val_fraction", val_fraction)
    program = build_program(segments, exp, linear, hold)
    check_rounds(program, rounds, points)
    figure = None if no_plot else plot
    if figure is not None:
        from lrkit.plots.figure import check_plot_path

        check_plot_path(figure)
    outputs = check_outputs([("--json", json_file), ("--plot", figure), ("--report", report_file)])

    from lrkit.data.tensors import TensorData
    from lrkit.rangetest.find import find_lr
    from lrkit.training import distributed
    from lrkit.training.device import resolve_device
    from lrkit.workload import load_workload

    settings = RangeTestSettings(
        batch_size=batch_size,
        program=program,
        rounds=rounds,
        points=points,
        curve=curve,
        suggestion=suggest,
        seed=seed,
        repeats=repeats,
        engine=engine,
        smoothing=smoothing,
        diverge_factor=diverge_factor,
        accumulation_steps=check.positive_int("accumulate", accumulate),
        amp=amp,
    )

    def run_test(target: torch.device, main: bool) -> RangeTestResult:
        # The model lives only in this call: a DDP model must be gone before its process
        # group is (see training.distributed.torchrun_group).
        work = load_workload(
            model, data, data_dir, loss, fraction, notify=_note if main else _quiet
        )
        net = distributed.wrap(work.make_model(seed).to(target), target)
        opt = make_optimizer(optimizer, net, program.lrs[0], momentum, weight_decay)
        eval_data = work.val.head(eval_size) if (work.val is not None and eval_size > 0) else None
        train = work.train.to(target) if isinstance(work.train, TensorData) else work.train

        with progress(None if main else False) as bar:
            current = {"round": -1}

            def on_step(index: int, step: Step, total: int) -> None:
                if index != current["round"]:
                    bar.finish(str(current["round"]))  # a round can stop early
                    current["round"] = index
                    bar.start(f"round {index + 1}", total, key=str(index))
                bar.update(step.iteration + 1, f"lr {step.lr:.3g}", key=str(index))

            result = find_lr(
                net,
                train,
                settings,
                loss_fn=work.loss_fn,
                optimizer=opt,
                eval_data=eval_data,
                on_step=on_step,
            )
            bar.finish(str(current["round"]))
        return dataclasses.replace(result, model=work.model_name, data=work.data_name)

    # Under torchrun this is one process of a data-parallel job (a DDP model, --batch-size
    # examples per rank); rank 0 alone prints and writes the files.
    with distributed.torchrun_group(resolve_device(device)) as target:
        main = distributed.is_main()
        with on_interrupt(outputs.interrupted):
            result = run_test(target, main)
            if main:
                _report(result, json_file, figure, report_file, outputs)


def _report(
    result: RangeTestResult,
    json_file: Path | None,
    figure: Path | None,
    report_file: Path | None,
    outputs: Outputs,
) -> None:
    if result.engine_reason is not None:
        _note(f"plain loop: {result.engine_reason}")
    print(summary(result))
    if json_file is not None:
        with outputs.writing("--json", json_file):
            write_json(json_file, result.to_json())
    if figure is not None:
        from lrkit.plots.rangetest import plot_range_test

        with outputs.writing("--plot", figure):
            plot_range_test(result, figure)
        print(f"wrote {figure}", file=sys.stderr)
    if report_file is not None:
        from lrkit.report.build import build_report, write_report

        sections = build_report(range_tests=[(result, "this run")])
        with outputs.writing("--report", report_file):
            write_report(report_file, sections, f"Range test of {result.model} on {result.data}.")
        print(f"wrote {report_file}", file=sys.stderr)


def build_program(
    segments: str | None, exp: str | None, linear: str | None, hold: int
) -> LrProgram:
    """The program from at most one of --segments, --exp and --linear (default: the textbook's)."""
    given = [
        name
        for name, value in (("--segments", segments), ("--exp", exp), ("--linear", linear))
        if value
    ]
    if len(given) > 1:
        raise LrkitValueError(f"give one program, not {' and '.join(given)}")
    if exp or linear:
        option = "--exp" if exp else "--linear"
        text = exp or linear or ""
        pieces = text.split(":")
        try:
            start, end, steps = float(pieces[0]), float(pieces[1]), int(pieces[2])
            if len(pieces) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise LrkitValueError(
                f"{option} must be START:END:STEPS (e.g. 1e-6:1:100), got {quoted(text)}"
            ) from None
        make = exponential_range if exp else linear_range
        hold = check.int_in("hold", hold, 1, MAX_ITERATIONS)
        try:
            return make(start, end, steps, hold)
        except LrkitValueError as exc:
            raise LrkitValueError(f"{option} {text}: {exc}") from None
    return segments_program(parse_segments(segments if segments is not None else DEFAULT_SEGMENTS))


def summary(result: RangeTestResult) -> str:
    """The table printed at the end: rounds, then every suggestion with the chosen one marked."""
    lines = [
        f"range test: {result.model} on {result.data}, batch size {result.batch_size}"
        + (
            f" ({result.batch_size // result.world_size} per rank x {result.world_size} ranks)"
            if result.world_size > 1
            else ""
        )
        + f", {result.device}, {result.engine} engine"
        + (f", {result.repeats} repeats" if result.repeats > 1 else "")
        + f", {result.seconds:.1f} s"
    ]
    rows: list[list[str | int | float]] = []
    for i, r in enumerate(result.rounds):
        turn = "-" if r.turning_point is None else format_number(r.turning_point.lr)
        diverged = r.record.diverged_at
        stopped = "completed" if diverged is None else f"diverged at {format_number(diverged)}"
        rows.append([i + 1, _short(r.record.program), len(r.record.points), r.curve, turn, stopped])
    lines += [
        "",
        text_table(["round", "program", "iterations", "curve", "turn", "stopped"], rows),
        "",
    ]
    suggestion_rows = [
        [
            name,
            "-" if lr is None else format_number(lr),
            "<- suggested" if name == result.method else "",
        ]
        for name, lr in result.suggestions.items()
    ]
    lines.append(text_table(["rule", "lr", ""], suggestion_rows))
    lines.append("")
    if not_finite_from_the_start(result):
        lines.append(
            "no suggestion: the loss was not finite from the first iteration, at the smallest "
            f"lr ({format_number(result.rounds[0].record.points[0].lr)}); check the model, "
            "the data and the loss"
        )
    elif result.suggested_lr is None:
        lines.append(
            f"no {result.method} suggestion: the loss never turned; widen the program's range "
            "or read another rule above"
        )
    else:
        lines.append(
            f"suggested learning rate: {format_number(result.suggested_lr)} ({result.method})"
        )
    if result.suggested_lr_by_repeat:
        each = ", ".join(
            "-" if v is None else format_number(v) for v in result.suggested_lr_by_repeat
        )
        lines.append(f"each repeat alone: {each}")
    return "\n".join(lines)


def not_finite_from_the_start(result: RangeTestResult) -> bool:
    """Whether every run of the first round had a loss that was not finite at its very first
    iteration: no learning rate is to blame then, something in the model, the data or the
    loss is."""
    records = result.rounds[0].records
    return all(r.points and not math.isfinite(r.points[0].loss) for r in records)


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _note(message: str) -> None:
    print(f"lrkit find: {message}", file=sys.stderr)


def _quiet(message: str) -> None:
    """The notes of ranks other than 0 (rank 0 says the same)."""
