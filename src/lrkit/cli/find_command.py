"""``lrkit find``: the learning-rate range test, with narrowing rounds and suggestions."""

from __future__ import annotations

import math
from collections.abc import Iterator
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
    OptimizerArgsOption,
    RecipeOptimizerOption,
    ValFractionOption,
    WeightDecayOption,
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
    write_result,
)
from lrkit.cli.progress import progress
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

if TYPE_CHECKING:
    import torch

    from lrkit.rangetest.core import Step
    from lrkit.rangetest.find import OnRoundStep
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
    optimizer: RecipeOptimizerOption = "sgd",
    optimizer_args: OptimizerArgsOption = None,
    momentum: MomentumOption = 0.9,
    weight_decay: WeightDecayOption = 0.0,
    smoothing: Annotated[
        float, typer.Option(help="Beta of the smoothed loss's moving average.")
    ] = 0.98,
    diverge_factor: Annotated[
        float,
        typer.Option(
            help="Stop when the smoothed loss exceeds this times its minimum (for a loss below "
            "zero, as a Poisson NLL: when it rises above its minimum by this minus 1 times "
            "the larger of the minimum's size and its fall to it)."
        ),
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
    fraction, program = _check_options(
        batch_size,
        eval_size,
        curve,
        suggest,
        (optimizer, optimizer_args),
        momentum,
        weight_decay,
        smoothing,
        diverge_factor,
        repeats,
        engine,
        seed,
        val_fraction,
        segments,
        exp,
        linear,
        hold,
        rounds,
        points,
    )
    outputs = check_result_outputs(json_file, None if no_plot else plot, report_file)
    from lrkit.rangetest.on_workload import WorkloadRangeTest, range_test_workload
    from lrkit.workload import WorkloadSource

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
    source = WorkloadSource(model, data, data_dir, loss, fraction)
    run = WorkloadRangeTest(
        source, settings, optimizer, momentum, weight_decay, eval_size, optimizer_args
    )

    def measure(target: torch.device, main: bool) -> RangeTestResult:
        return range_test_workload(run, target, notes("find", main), lambda: _round_bars(main))

    on_each_rank(device, outputs, measure, lambda result: _report(result, outputs))


def _check_options(
    batch_size: int,
    eval_size: int,
    curve: str,
    suggest: str,
    optimizer: tuple[str, str | None],
    momentum: float,
    weight_decay: float,
    smoothing: float,
    diverge_factor: float,
    repeats: int,
    engine: str,
    seed: int,
    val_fraction: str,
    segments: str | None,
    exp: str | None,
    linear: str | None,
    hold: int,
    rounds: int,
    points: int,
) -> tuple[float, LrProgram]:
    """Every option of the test checked before any work, in this order; the validation
    fraction and the program."""
    check.positive_int("batch_size", batch_size)
    check.nonnegative_int("eval_size", eval_size)
    check.choice("curve", curve, CURVES)
    check.choice("suggest", suggest, tuple(SUGGESTIONS))
    check_optimizer(optimizer[0], momentum, weight_decay, optimizer[1], paths=True)
    check_stopping(smoothing, diverge_factor)
    check.int_in("repeats", repeats, 1, MAX_REPEATS, "the vectorized engine's largest stack")
    check_engine(engine, LOCAL_ENGINES)
    check.seed("seed", seed)
    fraction = parse_fraction("val_fraction", val_fraction)
    program = build_program(segments, exp, linear, hold)
    check_rounds(program, rounds, points)
    return fraction, program


@contextmanager
def _round_bars(drawn: bool) -> Iterator[OnRoundStep]:
    """A progress bar a round, drawn where ``drawn`` (rank 0) and stderr is a terminal; a
    round's bar ends where the round stopped (it can stop early)."""
    with progress(None if drawn else False) as bar:
        current = {"round": -1}

        def on_step(index: int, step: Step, total: int) -> None:
            if index != current["round"]:
                bar.finish(str(current["round"]))
                current["round"] = index
                bar.start(f"round {index + 1}", total, key=str(index))
            bar.update(step.iteration + 1, f"lr {step.lr:.3g}", key=str(index))

        yield on_step
        bar.finish(str(current["round"]))


def _report(result: RangeTestResult, outputs: Outputs) -> None:
    if result.engine_reason is not None:
        notes("find")(f"plain loop: {result.engine_reason}")
    print(summary(result))
    write_result(outputs, result)


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
    lines = [_heading(result), "", _rounds_table(result), ""]
    lines += [_suggestions_table(result), "", _suggested(result)]
    if result.suggested_lr_by_repeat:
        each = ", ".join(
            "-" if v is None else format_number(v) for v in result.suggested_lr_by_repeat
        )
        lines.append(f"each repeat alone: {each}")
    return "\n".join(lines)


def _heading(result: RangeTestResult) -> str:
    return (
        f"range test: {result.model} on {result.data}, batch size {result.batch_size}"
        + (
            f" ({result.batch_size // result.world_size} per rank x {result.world_size} ranks)"
            if result.world_size > 1
            else ""
        )
        + f", {result.device}, {result.engine} engine"
        + (f", {result.repeats} repeats" if result.repeats > 1 else "")
        + f", {result.seconds:.1f} s"
    )


def _rounds_table(result: RangeTestResult) -> str:
    rows: list[list[str | int | float]] = []
    for i, r in enumerate(result.rounds):
        turn = "-" if r.turning_point is None else format_number(r.turning_point.lr)
        diverged = r.record.diverged_at
        stopped = "completed" if diverged is None else f"diverged at {format_number(diverged)}"
        rows.append([i + 1, _short(r.record.program), len(r.record.points), r.curve, turn, stopped])
    return text_table(["round", "program", "iterations", "curve", "turn", "stopped"], rows)


def _suggestions_table(result: RangeTestResult) -> str:
    rows = [
        [
            name,
            "-" if lr is None else format_number(lr),
            "<- suggested" if name == result.method else "",
        ]
        for name, lr in result.suggestions.items()
    ]
    return text_table(["rule", "lr", ""], rows)


def _suggested(result: RangeTestResult) -> str:
    """The suggestion, or why there is none."""
    if not_finite_from_the_start(result):
        return (
            "no suggestion: the loss was not finite from the first iteration, at the smallest "
            f"lr ({format_number(result.rounds[0].record.points[0].lr)}); check the model, "
            "the data and the loss"
        )
    if result.suggested_lr is None:
        return (
            f"no {result.method} suggestion: the loss never turned; widen the program's range "
            "or read another rule above"
        )
    return f"suggested learning rate: {format_number(result.suggested_lr)} ({result.method})"


def not_finite_from_the_start(result: RangeTestResult) -> bool:
    """Whether every run of the first round had a loss that was not finite at its very first
    iteration: no learning rate is to blame then, something in the model, the data or the
    loss is."""
    records = result.rounds[0].records
    return all(r.points and not math.isfinite(r.points[0].loss) for r in records)


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
