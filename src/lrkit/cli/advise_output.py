"""What ``lrkit advise`` prints for a race: the table of candidates and the advice."""

from __future__ import annotations

import math

from lrkit.advise.candidates import REACH
from lrkit.advise.plan import EXP_LRS, HOLD
from lrkit.advise.result import Advice
from lrkit.cli.output import format_number, text_table


def summary(advice: Advice) -> str:
    """The table of the race and the sentence of advice."""
    unit = "accuracy" if advice.metric == "accuracy" else "loss"
    lines = [
        f"advise: {advice.model} on {advice.data}, batch size {advice.batch_size}, "
        f"{advice.optimizer}, {advice.recipe}, {advice.epochs:g} epochs, {advice.engine} "
        f"engine, {advice.seconds:.1f} s (range test {advice.range_test_seconds:.1f} s)",
        "",
    ]
    rows: list[list[str | int | float]] = []
    for c in advice.candidates:
        mark = advice.mark(c.lr)
        rows.append(
            [
                shown_lr(c.lr),
                ", ".join(c.sources),
                f"{c.epochs_run:.3g}",
                _value(c.value, c.value_std) if c.status == "done" else c.status,
                f"<- {mark}" if mark else "",
            ]
        )
    lines.append(text_table(["lr", "from", "epochs", f"{unit} (± noise)", ""], rows))
    lines.append("")
    noise = {True: "within noise of it", False: "clearly behind", None: "of unknown noise"}
    runner = (
        ""
        if advice.runner_up is None
        else f"; the runner-up, {shown_lr(advice.runner_up)}, is "
        + noise[advice.runner_up_within_noise]
    )
    lines.append(
        f"advised learning rate: {shown_lr(advice.lr)} for "
        f"{advice.epochs:g} epochs at batch size {advice.batch_size} "
        f"(validation {unit} {advice.value:.4f} after {advice.decided_at:g} epochs){runner}"
    )
    note = advice.horizon_note()
    if note is not None:
        lines.append(note)
    lines.extend(batching_lines(advice))
    lines.extend(_as_good(advice))
    lines.extend(f"caution: {said}" for said in advice.cautions)
    lines.append(f"confidence: {advice.confidence_note()}")
    if advice.left_out:
        far = ", ".join(f"{rule} {shown_lr(lr)}" for rule, lr in advice.left_out)
        lines.append(f"not raced (more than {REACH:g}x from the default's suggestion): {far}")
    lines.extend(_finished(advice, unit))
    lines.append(_cost(advice))
    return "\n".join(lines)


def _as_good(advice: Advice) -> list[str]:
    """The lrs the race could not tell from the winner, where there are others."""
    low, high = advice.as_good
    if high <= low:
        return []
    return [
        f"as good as far as the race could tell (within noise where compared): "
        f"{shown_lr(low)} to {shown_lr(high)}"
    ]


def batching_lines(advice: Advice) -> list[str]:
    """How the batch trains in memory, where it does not fit whole: the micro-batches, and the
    same in a Hugging Face Trainer's arguments."""
    batching = advice.batching
    if batching is None or batching.accumulation_steps == 1:
        return []
    hf = ", ".join(f"{name}={value}" for name, value in batching.trainer_arguments().items())
    return [f"memory: {batching.describe()}", f"in the Hugging Face Trainer: {hf}"]


def _finished(advice: Advice, unit: str) -> list[str]:
    """The finishing run's line (with --finish)."""
    run = advice.finished
    if run is None:
        return []
    where = f"on from the race's {run.resumed_at:g} epochs" if run.resumed_at else "from the start"
    if run.status != "done":
        return [f"finishing run at {shown_lr(run.lr)} {run.status} ({where}): {run.error or ''}"]
    return [
        f"trained to {advice.epochs:g} epochs at {shown_lr(run.lr)} ({where}): validation "
        f"{unit} {run.value:.4f}"
    ]


def _cost(advice: Advice) -> str:
    """Training done, in runs of the budget: in all, and beyond the one run (with --finish)."""
    said = f"cost: {advice.budgets_trained:.2f} budgets of training in all"
    if advice.beyond_one_run is not None:
        said += f", {advice.beyond_one_run:.2f} beyond the one run you would have made"
    if advice.range_test_budgets > SHORT_BUDGET_RANGE_TEST:
        said += (
            f"; the range test alone took {advice.range_test_budgets:.2f} (its least, "
            f"{EXP_LRS[0]} lrs of {HOLD} steps, is long against this budget)"
        )
    return said


SHORT_BUDGET_RANGE_TEST = 0.5
"""A range test longer than this share of the budget is called out in the cost line (it is
a quarter of the budget, but never fewer than ``EXP_LRS[0]`` held lrs)."""


def shown_lr(lr: float) -> str:
    """A learning rate to four significant digits, as people write it."""
    return format_number(float(f"{lr:.4g}"))


def _value(value: float, std: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.4f} ± {std:.4f}" if math.isfinite(std) else f"{value:.4f}"
