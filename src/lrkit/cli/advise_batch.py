"""``lrkit advise`` without ``--batch-size``: the batch size for the budget, then its
learning rate (``lrkit.batchsize``), printed, and written as JSON, a figure and a report."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lrkit.cli.output import Outputs, text_table, write_json
from lrkit.cli.progress import on_interrupt, progress

if TYPE_CHECKING:
    from lrkit.batchsize.result import BatchAdvice
    from lrkit.batchsize.settings import BatchSettings
    from lrkit.workload import Workload


def run_batch_advice(
    work: Workload,
    device: torch.device,
    settings: BatchSettings,
    address: str | None,
    json_file: Path | None,
    plot: Path | None,
    report_file: Path | None,
    outputs: Outputs,
) -> None:
    from lrkit.batchsize.driver import advise_batch_size
    from lrkit.cli.advise_output import summary
    from lrkit.data.tensors import TensorData
    from lrkit.errors import LrkitValueError

    if not isinstance(work.train, TensorData) or work.val is None:
        raise LrkitValueError(
            "--data: advise needs tensor data (TensorData or (x, y)) with a validation part"
        )
    with progress() as bar, on_interrupt(outputs.interrupted):
        trained: dict[float, float] = {}

        def on_stage(stage: str) -> None:
            trained.clear()
            bar.start(stage, 1.0)

        def on_check(lr: float, point: object, done: float) -> None:
            trained[lr] = done
            bar.update(0.0, f"lr {lr:.3g}, {sum(trained.values()):.3g} trial-epochs")

        found = advise_batch_size(
            lambda s: work.make_model(s).to(device),
            work.train,
            work.val,
            settings,
            loss_fn=work.loss_fn,
            on_stage=on_stage,
            on_check=on_check,
            address=address,
        )
    model, data = work.model_name, work.data_name
    races = tuple(
        dataclasses.replace(r, advice=dataclasses.replace(r.advice, model=model, data=data))
        for r in found.races
    )
    found = dataclasses.replace(found, races=races, model=model, data=data)
    chosen = found.chosen.advice
    print(batch_summary(found))
    print()
    print(summary(chosen))
    if found.lr != chosen.lr:
        print(
            f"for the target, the lr that reached it first ({found.lr:.4g}) is advised, not the "
            f"race's best value at {chosen.decided_at:g} epochs"
        )
    with on_interrupt(outputs.interrupted):
        if json_file is not None:
            with outputs.writing("--json", json_file):
                write_json(json_file, found.to_json())
        if plot is not None:
            from lrkit.plots.batch_advice import plot_batch_advice

            with outputs.writing("--plot", plot):
                plot_batch_advice(found, plot)
            print(f"wrote {plot}", file=sys.stderr)
        if report_file is not None:
            from lrkit.report.build import build_report, write_report

            sections = build_report(batch_advice=[(found, "this run")])
            lead = f"Advice for {found.model} on {found.data}."
            with outputs.writing("--report", report_file):
                write_report(report_file, sections, lead)
            print(f"wrote {report_file}", file=sys.stderr)


def batch_summary(found: BatchAdvice) -> str:
    """The table of candidate batch sizes and the sentence of advice."""
    noise = found.noise
    ceiling = found.ceiling
    if ceiling.method == "probe":
        how = "probed: " + ", ".join(
            f"{b}{'' if ok else ' (out of memory)'}" for b, ok in ceiling.tried
        )
    else:
        how = (
            f"estimated: {ceiling.example_bytes or 0:,.0f} bytes per example, "
            f"{(ceiling.memory_bytes or 0) / 2**30:.3g} GiB assumed available"
        )
    lines = [
        f"advise: {found.model} on {found.data}, {found.races[0].advice.optimizer}, for "
        f"{found.budget()}; {found.seconds:.1f} s",
        f"noise scale: B_noise = {noise.b_noise:.3g} ± {noise.stderr:.2g} ({noise.estimator}, "
        f"at batch size {noise.batch_size}, lr {noise.lr:.3g}, {noise.where()})",
        f"largest batch that fits: {ceiling.batch_size} ({how})",
        "",
    ]
    rows: list[list[str | int | float]] = []
    for p in found.predictions:
        mark = "<- advised" if p.batch_size == found.batch_size else ""
        if p.batch_size == found.predicted:
            mark = (mark + " (predicted)").strip()
        rows.append(
            [
                p.batch_size,
                f"{p.step_seconds * 1e3:.3g}" if p.fits else "-",
                f"{p.examples_per_second:,.0f}" if p.fits else "-",
                f"{p.steps_factor:.3g}",
                f"{p.relative_time:.3g}" if p.fits else "does not fit",
                f"{p.relative_progress:.3g}",
                found.outcome(p.batch_size),
                mark,
            ]
        )
    value = f"race: {found.metric}" + (
        " (± noise), time to target" if found.mode == "target" else " (± noise)"
    )
    lines.append(
        text_table(
            ["batch", "step ms", "examples/s", "S/S_min", "time/best", "epochs' worth", value, ""],
            rows,
        )
    )
    lines.append("")
    lines.append(
        f"advised: batch size {found.batch_size}, learning rate {found.lr:.4g}: {found.reason}"
    )
    return "\n".join(lines)
