"""``lrkit advise`` without ``--batch-size``: the batch size for the budget, then its
learning rate (``lrkit.batchsize``), printed, and written as JSON, a figure and a report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lrkit.cli.advise_output import summary
from lrkit.cli.output import Outputs, text_table, write_result
from lrkit.cli.progress import on_interrupt, progress

if TYPE_CHECKING:
    from lrkit.advise.on_workload import RaceWorkload
    from lrkit.batchsize.result import BatchAdvice
    from lrkit.batchsize.settings import BatchSettings


def run_batch_advice(
    work: RaceWorkload, settings: BatchSettings, address: str | None, outputs: Outputs
) -> None:
    """The batch size and its learning rate, a progress bar a stage; printed, then written
    where asked."""
    from lrkit.batchsize.on_workload import advise_batch_size_workload

    with progress() as bar, on_interrupt(outputs.interrupted):
        trained: dict[float, float] = {}

        def on_stage(stage: str) -> None:
            trained.clear()
            bar.start(stage, 1.0)

        def on_check(lr: float, point: object, done: float) -> None:
            trained[lr] = done
            bar.update(0.0, f"lr {lr:.3g}, {sum(trained.values()):.3g} trial-epochs")

        found = advise_batch_size_workload(work, settings, on_stage, on_check, address)
    chosen = found.chosen.advice
    print(batch_summary(found))
    print()
    print(summary(chosen))
    if found.lr != chosen.lr:
        print(
            f"for the target, the lr that reached it first ({found.lr:.4g}) is advised, not the "
            f"race's best value at {chosen.decided_at:g} epochs"
        )
    write_result(outputs, found)


def batch_summary(found: BatchAdvice) -> str:
    """The table of candidate batch sizes and the sentence of advice."""
    noise = found.noise
    lines = [
        f"advise: {found.model} on {found.data}, {found.races[0].advice.optimizer}, for "
        f"{found.budget()}; {found.seconds:.1f} s",
        f"noise scale: B_noise = {noise.b_noise:.3g} ± {noise.stderr:.2g} ({noise.estimator}, "
        f"at batch size {noise.batch_size}, lr {noise.lr:.3g}, {noise.where()})",
        f"largest batch that fits: {found.ceiling.batch_size} ({_how_found(found)})",
        "",
        _candidates_table(found),
        "",
        f"advised: batch size {found.batch_size}, learning rate {found.lr:.4g}: {found.reason}",
    ]
    return "\n".join(lines)


def _how_found(found: BatchAdvice) -> str:
    """How the largest batch that fits was found: the sizes probed, or the estimate."""
    ceiling = found.ceiling
    if ceiling.method == "probe":
        return "probed: " + ", ".join(
            f"{b}{'' if ok else ' (out of memory)'}" for b, ok in ceiling.tried
        )
    return (
        f"estimated: {ceiling.example_bytes or 0:,.0f} bytes per example, "
        f"{(ceiling.memory_bytes or 0) / 2**30:.3g} GiB assumed available"
    )


def _candidates_table(found: BatchAdvice) -> str:
    """Each candidate batch size: its step time, the model's prediction, the race's outcome."""
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
    header = ["batch", "step ms", "examples/s", "S/S_min", "time/best", "epochs' worth", value, ""]
    return text_table(header, rows)
