"""Options shared by several verbs: declared once here, and the parsing of their values."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer

from lrkit import validation as check
from lrkit.errors import LrkitValueError

ModelOption = Annotated[
    str, typer.Option(help="Built-in model (mnist-mlp, logistic, mnist-cnn) or module:factory.")
]
DataOption = Annotated[
    str | None, typer.Option(help="Training data by import path, module:factory.")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        help="MNIST folder of IDX files (default: $LRKIT_DATA_DIR, else the bundled sample)."
    ),
]
LossOption = Annotated[
    str | None, typer.Option(help="Loss by import path (default: cross-entropy).")
]
OptimizerOption = Annotated[
    str, typer.Option(help="sgd (plain, the textbook's), momentum, adam or adamw.")
]
MomentumOption = Annotated[float, typer.Option(help="Momentum for --optimizer momentum.")]
WeightDecayOption = Annotated[float, typer.Option(help="Weight decay.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
EngineOption = Annotated[
    str,
    typer.Option(
        help="auto (vectorized when the model and optimizer allow), sequential or vectorized: "
        "trials of one batch size trained together as one stacked model."
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(help="Processes for the vectorized engine on a CPU (default: one per core)."),
]
ValFractionOption = Annotated[
    str,
    typer.Option(help="Fraction of the training data held out for validation (1/12 or 0.0833)."),
]


def parse_fraction(name: str, text: str) -> float:
    """``1/12`` or ``0.0833``, in (0, 1)."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise LrkitValueError(
            f"--{name.replace('_', '-')} must be a fraction like 1/12 or 0.1, got {text!r}"
        ) from None
    return check.float_in(name, value, 0.0, 1.0, low_open=True, high_open=True)
