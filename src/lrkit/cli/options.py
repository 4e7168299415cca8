"""Options shared by several verbs: declared once here, and the parsing and checks of their
values (each requirement stated once, for every verb that takes the option)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer

from lrkit import validation as check
from lrkit.errors import InvalidParameterError
from lrkit.training.optimizers import (
    OPTIMIZERS,
    check_optimizer_name,
    check_optimizer_spec,
    is_path,
)

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
RecipeOptimizerOption = Annotated[
    str,
    typer.Option(
        "--optimizer",
        help="sgd (plain, the textbook's), momentum, adam, adamw, or module:Class: any "
        "torch.optim.Optimizer subclass, e.g. torch.optim:RAdam.",
    ),
]
OptimizerArgsOption = Annotated[
    str | None,
    typer.Option(
        help="The optimizer's keyword arguments besides the lr, as a JSON object, e.g. "
        '\'{"betas": [0.9, 0.95], "eps": 1e-8}\'.'
    ),
]
MomentumOption = Annotated[
    float, typer.Option(help="Momentum for --optimizer momentum, in [0, 1).")
]
WeightDecayOption = Annotated[float, typer.Option(help="Weight decay.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
DEVICES = ("auto", "cpu", "cuda")
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
    requirement = "a fraction in (0, 1) like 1/12 or 0.1"
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise InvalidParameterError(name, requirement, text) from None
    if not 0.0 < value < 1.0:
        raise InvalidParameterError(name, requirement, text)
    return value


def check_optimizer(
    optimizer: str,
    momentum: float,
    weight_decay: float,
    args: str | None = None,
    *,
    paths: bool = False,
) -> None:
    """--optimizer, --momentum and --weight-decay, as every verb that trains takes them:
    momentum is checked whichever the optimizer (a bad value is a typo to point out even
    where it would go unused). A verb that also takes ``module:Class`` and --optimizer-args
    (``paths``, ``args``) has the class imported and built once with them
    (``training.optimizers.check_optimizer_spec``)."""
    if paths:
        check_optimizer_name(optimizer)
    else:
        check.choice("optimizer", optimizer, OPTIMIZERS)
    check.float_in("momentum", momentum, 0.0, 1.0, low_open=False, high_open=True)
    check.nonnegative_float("weight_decay", weight_decay)
    if paths and (is_path(optimizer) or args is not None):
        check_optimizer_spec(optimizer, momentum, weight_decay, args)


def check_device(device: str) -> str:
    """--device: one of ``DEVICES`` (whether CUDA is there is asked when the work starts)."""
    return check.choice("device", device, DEVICES)


BYTE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 2**10, "m": 10**6, "mb": 10**6}
BYTE_UNITS |= {"mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12}
BYTE_UNITS |= {"tib": 2**40}


def parse_bytes(name: str, text: str) -> int:
    """An amount of memory: ``4GiB``, ``512MiB``, ``2GB`` or bytes, > 0."""
    requirement = "an amount of memory like 4GiB, 512MiB or 2000000000"
    cleaned = text.strip().lower().replace(" ", "")
    number = cleaned.rstrip("kmgtib")
    unit = cleaned[len(number) :]
    try:
        value = float(number) * BYTE_UNITS[unit]
    except (ValueError, KeyError):
        raise InvalidParameterError(name, requirement, text) from None
    if not 1 <= value < 2**63:
        raise InvalidParameterError(name, requirement, text)
    return int(value)
