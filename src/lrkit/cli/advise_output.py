"""What ``lrkit advise`` prints for a race: the table of candidates and the advice."""

from __future__ import annotations

import math

from lrkit.advise.candidates import REACH
from lrkit.advise.result import Advice
from lrkit.cli.output import format_number, text_table


def summary(advice: Advice) -> str:
    """The table of the race and the sentence of advice."""
    unit = "accuracy" if advice.metric == "accuracy" else "loss"
    lines = [
        f"advise: {advice.model} on {advice.data}, batch size {advice.batch_size}, "
        f"{advice.optimizer}, {advice.epochs:g} epochs, {advice.engine} engine, "
        f"{advice.seconds:.1f} s (range test {advice.range_test_seconds:.1f} s; "
        f"{advice.trial_epochs / advice.epochs:.2g} budgets of training)",
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
    low, high = advice.as_good
    if high > low:
        lines.append(
            f"as good as far as the race could tell (within noise where compared): "
            f"{shown_lr(low)} to {shown_lr(high)}"
        )
    lines.extend(f"caution: {said}" for said in advice.cautions)
    if advice.left_out:
        far = ", ".join(f"{rule} {shown_lr(lr)}" for rule, lr in advice.left_out)
        lines.append(f"not raced (more than {REACH:g}x from the default's suggestion): {far}")
    return "\n".join(lines)


def shown_lr(lr: float) -> str:
    """A learning rate to four significant digits, as people write it."""
    return format_number(float(f"{lr:.4g}"))


def _value(value: float, std: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.4f} ± {std:.4f}" if math.isfinite(std) else f"{value:.4f}"
