"""``lrkit scale``: the learning rate for another batch size, by the linear, square-root or
fitted rule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lrkit.cli.output import format_number
from lrkit.errors import LrkitValueError
from lrkit.scaling import FORMULAS, RULES, scale_lr

HELP = "\n\n".join(
    [
        "Recommend a learning rate for a new batch size from one known good at another.",
        "Rules: linear (lr * B'/B), sqrt (lr * sqrt(B'/B)), fit (lr * (B'/B)^k with k fitted to a "
        "sweep's best learning rates: give --store).",
        "Example: lrkit scale --lr 0.5 --batch-size 128 --to 512 --rule sqrt",
    ]
)


def scale(
    lr: Annotated[float, typer.Option("--lr", help="A good learning rate at --batch-size.")],
    batch_size: Annotated[int, typer.Option("--batch-size", help="The batch size it was good at.")],
    to: Annotated[int, typer.Option("--to", help="The batch size to scale to.")],
    rule: Annotated[str, typer.Option(help="linear, sqrt or fit.")] = "linear",
    store: Annotated[Path | None, typer.Option(help="A sweep's store, for --rule fit.")] = None,
    name: Annotated[
        str | None, typer.Option(help="The sweep in --store (default: all its trials).")
    ] = None,
) -> None:
    from lrkit import validation as check

    rule = check.choice("rule", rule, RULES)
    k = None
    note = ""
    if rule == "fit":
        if store is None:
            raise LrkitValueError(
                "--rule fit needs --store: the sweep whose best learning rates give k"
            )
        from lrkit.sweep.analysis import best_lr_by_batch_size, fit_best
        from lrkit.sweep.store import Store

        with Store.open(store, create=False) as opened:
            trials = opened.trials(name, with_points=False)
        fit = fit_best(best_lr_by_batch_size(trials))
        if fit is None:
            raise LrkitValueError(
                f"--store {store}: the fit needs two batch sizes or more, "
                "each with two learning rates or more"
            )
        k = fit.k
        stderr = "" if fit.k_stderr is None else f" ± {fit.k_stderr:.2f}"
        sizes = ", ".join(map(str, fit.batch_sizes))
        note = f" with k = {fit.k:.3f}{stderr} fitted over batch sizes {sizes}"
    result = scale_lr(lr, batch_size, to, rule, k)
    print(f"learning rate for batch size {to}: {format_number(result)}")
    print(f"{rule} rule: {FORMULAS[rule]}{note}")
