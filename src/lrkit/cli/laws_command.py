"""``lrkit laws``: a ladder of widths, each rung's best learning rate from its band of near-best
runs, the law eta*(width) = a width^alpha with its interval, the prediction for a larger
width, the held-out check, and whether the best lr moves with width at all."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lrkit import validation as check
from lrkit.cli.options import (
    DataDirOption,
    DataOption,
    DeviceOption,
    LossOption,
    MomentumOption,
    OptimizerOption,
    ValFractionOption,
    WeightDecayOption,
    check_optimizer,
    parse_fraction,
)
from lrkit.cli.output import check_output_file, text_table, write_json, writing
from lrkit.cli.progress import on_interrupt, progress
from lrkit.errors import InvalidParameterError, LrkitValueError

if TYPE_CHECKING:
    from torch import nn

    from lrkit.laws.fit import HeldOutCheck, LawFit, Prediction
    from lrkit.laws.ladder import Rung
    from lrkit.laws.transfer import CoordinateCheck

HELP = "\n\n".join(
    [
        "Predict the best learning rate of a larger model from a ladder of small ones, with "
        "an interval, and check the prediction before trusting it.",
        "--model module:factory is called with the width as its one argument. At each of "
        "--widths a sweep (one store, resumable) trains --batch-size over a geometric lr grid "
        "(--per-octave points an octave, --octaves each side of --lr, by default the range "
        "test's suggestion at the smallest width), grown by an octave where the best runs "
        "touch its end. Each width's optimum is the centre of its runs within 0.25% of its "
        "best final validation loss (Step Law's band); eta*(width) = a width^alpha is fitted "
        "to them (or ln eta* quadratic in ln width, where that predicts held-out widths "
        "better), with 90% intervals. The largest width is predicted from the others as a "
        "check; --predict-width says where the law puts the optimum, and warns when the "
        "interval is wider than a factor of 2 or the width lies far outside the ladder.",
        "Transfer: the exponent's interval says whether the best lr moves with width (muP "
        "promises it does not); --check-transfer also runs the coordinate check (each layer's "
        "activation size against width after a few steps: flat under muP).",
        "Example: lrkit laws --model mymodels:mlp --widths 32,64,128,256 --predict-width 1024 "
        "--optimizer adam --batch-size 128 --epochs 2 --store laws.sqlite --json laws.json",
    ]
)

MIN_WIDTHS = 4
"""Rungs a ladder needs: three to fit a law with an interval, one more to hold out."""


def parse_widths(text: str) -> tuple[int, ...]:
    """``--widths 32,64,128,256``: at least ``MIN_WIDTHS`` distinct positive integers."""
    try:
        widths = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise InvalidParameterError(
            "widths", f"at least {MIN_WIDTHS} comma-separated positive integers", text
        ) from None
    if len(widths) < MIN_WIDTHS or widths[0] < 1:
        raise InvalidParameterError(
            "widths", f"at least {MIN_WIDTHS} comma-separated positive integers", text
        )
    return widths


def laws(
    model: Annotated[
        str,
        typer.Option(help="The model family: module:factory, called with the width."),
    ],
    widths: Annotated[str, typer.Option(help="The ladder's widths, comma-separated (at least 4).")],
    predict_width: Annotated[
        int | None, typer.Option(help="The width to predict the best lr of.")
    ] = None,
    data: DataOption = None,
    data_dir: DataDirOption = None,
    loss: LossOption = None,
    optimizer: OptimizerOption = "adam",
    momentum: MomentumOption = 0.9,
    weight_decay: WeightDecayOption = 0.0,
    batch_size: Annotated[int, typer.Option(help="Training batch size at every width.")] = 128,
    epochs: Annotated[float, typer.Option(help="Epochs each run trains.")] = 2.0,
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr", help="Centre of the lr grid (default: the range test at the smallest width)."
        ),
    ] = None,
    octaves: Annotated[int, typer.Option(help="Octaves of the grid each side of --lr.")] = 2,
    per_octave: Annotated[int, typer.Option(help="Grid points an octave.")] = 4,
    val_fraction: ValFractionOption = "1/12",
    store: Annotated[Path, typer.Option(help="The sweep store (SQLite), resumable.")] = Path(
        "laws.sqlite"
    ),
    name: Annotated[str, typer.Option(help="Prefix of the rungs' sweep names.")] = "laws",
    engine: Annotated[
        str, typer.Option(help="auto, sequential, vectorized or ray (as lrkit sweep).")
    ] = "auto",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: one per core).")
    ] = None,
    device: DeviceOption = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the weights and the data order.")] = 0,
    check_transfer: Annotated[
        bool, typer.Option("--check-transfer", help="Also run the coordinate check.")
    ] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the result.")] = None,
) -> None:
    ladder = parse_widths(widths)
    if predict_width is not None:
        check.positive_int("predict_width", predict_width)
    check_optimizer(optimizer, momentum, weight_decay)
    check.positive_int("batch_size", batch_size)
    check.positive_float("epochs", epochs)
    if lr is not None:
        check.positive_float("lr", lr)
    check.positive_int("octaves", octaves)
    check.positive_int("per_octave", per_octave)
    check.choice("engine", engine, ("auto", "sequential", "vectorized", "ray"))
    check.choice("device", device, ("auto", "cpu", "cuda"))
    check.seed("seed", seed)
    fraction = parse_fraction("val_fraction", val_fraction)
    if json_file is not None:
        check_output_file("--json", json_file)

    from lrkit.data.tensors import TensorData
    from lrkit.imports import load_object
    from lrkit.laws.fit import check_largest, choose_law, fit_law
    from lrkit.laws.ladder import run_ladder
    from lrkit.sweep.definition import SweepDefinition
    from lrkit.training.device import resolve_device
    from lrkit.workload import load_workload

    work = load_workload(
        model,
        data,
        data_dir,
        loss,
        fraction,
        notify=lambda m: print(f"lrkit laws: {m}", file=sys.stderr),
    )
    if not isinstance(work.train, TensorData) or work.val is None:
        raise LrkitValueError("--data: lrkit laws needs tensor data with a validation part")
    if batch_size > len(work.train):
        raise InvalidParameterError(
            "batch_size", f"at most the training examples ({len(work.train)})", batch_size
        )
    factory = width_factory(load_object(model, "--model"), model)
    target = resolve_device(device)
    center = (
        lr
        if lr is not None
        else range_test_center(
            factory(ladder[0]), work, optimizer, momentum, weight_decay, batch_size, epochs, seed
        )
    )
    definition = SweepDefinition(
        model=model,
        data=data or str(data_dir or "mnist"),
        loss=loss or "cross_entropy",
        epochs=epochs,
        eval_every=epochs / 4,
        val_fraction=float(fraction),
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=None,
        batch_size_schedule=None,
        seed=seed,
    )
    from lrkit.sweep.runner import SweepEvents
    from lrkit.sweep.store import Store

    with (
        on_interrupt(lambda: f"finished runs are kept in {store}: run again to resume"),
        progress() as bar,
        Store.open(store) as opened,
    ):
        done = [0]

        def on_trial_start(key: Any, index: int, total: int) -> None:
            if index == 0:
                bar.start("runs", total, key="runs")
                done[0] = 0

        def on_trial_end(key: Any, outcome: Any) -> None:
            done[0] += 1
            bar.update(done[0], f"lr {key.lr:.3g}: {outcome.status}", key="runs")

        rungs = run_ladder(
            factory,
            ladder,
            work,
            definition,
            opened,
            batch_size=batch_size,
            center_lr=center,
            octaves=octaves,
            per_octave=per_octave,
            name=name,
            device=target,
            engine=engine,
            workers=workers,
            events=SweepEvents(on_trial_start=on_trial_start, on_trial_end=on_trial_end),
        )
    groups: dict[tuple[float, ...], Sequence[tuple[float, float]]] = {
        (float(r.width),): r.runs for r in rungs
    }
    law = choose_law(groups, ["width"], seed=seed)
    power = law if law.form == "power" else fit_law(groups, ["width"], seed=seed)
    held = check_largest(groups, ["width"], seed=seed)
    prediction = law.predict(float(predict_width)) if predict_width is not None else None
    coordinates = None
    if check_transfer:
        coordinates = run_coordinate_check(
            factory, ladder, work, optimizer, center, momentum, weight_decay, batch_size
        )
    print(summary(rungs, law, power, held, prediction, coordinates, center, lr is None))
    if json_file is not None:
        with writing("--json", json_file):
            write_json(
                json_file, document(rungs, law, power, held, prediction, coordinates, center)
            )


def width_factory(factory: object, spec: str) -> Any:
    """``width -> nn.Module`` from the user's factory, its failures as one-line errors."""
    from lrkit.workload import built_model

    if not callable(factory):
        raise LrkitValueError(f"--model {spec} is not callable: give a function of the width")
    return lambda width: built_model(factory, spec, width, where=f" at width {width}")


def range_test_center(
    net: nn.Module,
    work: Any,
    optimizer: str,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    epochs: float,
    seed: int,
) -> float:
    """The range test's suggestion at the smallest width, over the budget's steps."""
    from lrkit.advise.driver import budget_range_test
    from lrkit.advise.settings import AdviseSettings

    settings = AdviseSettings(
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
    )
    steps = math.ceil(epochs * math.ceil(len(work.train) / batch_size))
    found = budget_range_test(net, work.train, work.val, settings, work.loss_fn, steps)
    suggested = found.suggested_or_least
    if suggested is None:
        raise LrkitValueError(
            "the range test at the smallest width suggested no learning rate (the loss never "
            "fell): give --lr"
        )
    return float(suggested)


def run_coordinate_check(
    factory: Any,
    ladder: tuple[int, ...],
    work: Any,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
) -> CoordinateCheck:
    from lrkit.laws.transfer import coordinate_check
    from lrkit.training.optimizers import make_optimizer

    return coordinate_check(
        factory,
        lambda net: make_optimizer(optimizer, net, lr, momentum, weight_decay),
        ladder,
        work.train.x,
        work.train.y,
        work.loss_fn,
        batch_size=min(batch_size, len(work.train)),
    )


def transfer_sentence(power: LawFit) -> str:
    (alpha,), ((low, high),) = power.exponents, power.exponent_intervals
    interval = f"{power.level:.0%} interval {low:.3g} .. {high:.3g}"
    if low <= 0.0 <= high:
        return (
            f"the best lr does not measurably move with width: exponent {alpha:.3g} "
            f"({interval} holds 0)"
        )
    return f"the best lr moves with width as width^{alpha:.3g} ({interval})"


def short(value: float) -> str:
    """A learning rate to 4 significant figures (the grid's points are no finer)."""
    return f"{value:.4g}"


def summary(
    rungs: tuple[Rung, ...],
    law: LawFit,
    power: LawFit,
    held: HeldOutCheck,
    prediction: Prediction | None,
    coordinates: CoordinateCheck | None,
    center: float,
    from_range_test: bool,
) -> str:
    rows: list[list[str | int | float]] = [
        [
            r.width,
            short(r.optimum.lr),
            f"{short(r.optimum.low)} .. {short(r.optimum.high)}",
            f"{r.optimum.best_loss:.4g}",
            f"{r.optimum.runs} of {len(r.runs)}",
            "yes" if r.optimum.at_edge else "",
        ]
        for r in rungs
    ]
    where = "the range test at the smallest width" if from_range_test else "--lr"
    lines = [
        f"lrkit laws: {len(rungs)} widths, {sum(len(r.runs) for r in rungs)} runs; the grid "
        f"centred on {short(center)} ({where})",
        "",
        text_table(
            ["width", "best lr", "band", "best loss", "runs in band", "at grid's end"], rows
        ),
        "",
    ]
    if law.form == "power":
        (alpha,), ((low, high),) = law.exponents, law.exponent_intervals
        lines.append(
            f"law: eta* = {law.coefficient:.4g} width^{alpha:.4g} ({law.level:.0%} interval of "
            f"the exponent {low:.4g} .. {high:.4g})"
        )
    else:
        b, c = law.exponents
        lines.append(
            f"law: ln eta* = {math.log(law.coefficient):.4g} + {b:.4g} ln w + {c:.4g} (ln w)^2 "
            "(it predicted held-out widths better than a power law)"
        )
    forms = ", ".join(f"{f} {e:.3g}" for f, e in law.compared if math.isfinite(e))
    if forms:
        lines.append(f"held-out error (ln lr, leave one width out): {forms}")
    lines.append(transfer_sentence(power))
    measured = held.measured.lr
    lines.append(
        f"check: width {held.values[0]:g} predicted from the others at "
        f"{short(held.prediction.value)} (where its measurement should fall: "
        f"{short(held.prediction.measured_low)} .. "
        f"{short(held.prediction.measured_high)}), measured {short(measured)}: "
        + ("within" if held.within else "OUTSIDE: do not trust the law's extrapolation")
    )
    if prediction is not None:
        lines += [
            "",
            f"predicted best lr at width {prediction.values[0]:g}: "
            f"{short(prediction.value)} ({prediction.level:.0%} interval "
            f"{short(prediction.low)} .. {short(prediction.high)})",
            *(f"warning: {w}" for w in prediction.warnings),
        ]
    if coordinates is not None:
        rows = [
            [
                layer.layer,
                f"{layer.slope:.3g}",
                f"{layer.interval[0]:.3g} .. {layer.interval[1]:.3g}",
                layer.verdict,
            ]
            for layer in coordinates.layers
        ]
        lines += [
            "",
            f"coordinate check ({coordinates.steps} steps, mean |activation| against width):",
            text_table(["layer", "slope", "90% interval", ""], rows),
            "flat: every layer keeps its size across widths"
            if coordinates.flat
            else "not flat: the parametrization does not keep activations fixed as width grows",
        ]
    return "\n".join(lines)


def document(
    rungs: tuple[Rung, ...],
    law: LawFit,
    power: LawFit,
    held: HeldOutCheck,
    prediction: Prediction | None,
    coordinates: CoordinateCheck | None,
    center: float,
) -> dict[str, Any]:
    (alpha,), (interval,) = power.exponents, power.exponent_intervals
    found: dict[str, Any] = {
        "center_lr": center,
        "rungs": [r.to_json() for r in rungs],
        "fit": law.to_json(),
        "check": held.to_json(),
        "transfer": {
            "exponent": alpha,
            "interval": list(interval),
            "moves": not interval[0] <= 0.0 <= interval[1],
        },
    }
    if prediction is not None:
        found["predict"] = {
            "width": prediction.values[0],
            "lr": prediction.value,
            "lr_interval": [prediction.low, prediction.high],
            "measured_interval": [prediction.measured_low, prediction.measured_high],
            "warnings": list(prediction.warnings),
        }
    if coordinates is not None:
        found["coordinate_check"] = coordinates.to_json()
    return found
