"""What ``lrkit laws`` prints and writes: the ladder's table, each law with its intervals and
held-out check, the transfer verdict, the forecast with its warnings, and the JSON document."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lrkit.cli.output import text_table
from lrkit.laws.words import figure, law_formula, law_intervals, ln_error, resolution_sentence

if TYPE_CHECKING:
    from lrkit.laws.analysis import Forecast, Group, LawsAnalysis, NamedLaw
    from lrkit.laws.fit import LawFit
    from lrkit.laws.ladder import Rung
    from lrkit.laws.points import Ladder
    from lrkit.laws.transfer import CoordinateCheck


def short(value: float) -> str:
    """A learning rate to 4 significant figures (the grid's points are no finer)."""
    return f"{value:.4g}"


def law_sentence(law: NamedLaw) -> str:
    """The law's formula and its exponents' intervals (a form other than the power law says
    why it was kept: ``LawForm.why_kept``)."""
    formula = law_formula(law.fit, law.spec.quantity)
    kept = law.fit.law_form.why_kept
    why = f"; {kept}" if kept else ""
    return f"{formula} ({law_intervals(law.fit)}{why})"


def check_sentence(law: NamedLaw) -> str:
    held = law.held_out
    if held is None:
        return "check: too few groups to hold one out"
    where = ", ".join(f"{v} {x:g}" for v, x in zip(law.fit.variables, held.values, strict=True))
    return (
        f"check: {where} predicted from the others at {short(held.prediction.value)} (where its "
        f"measurement should fall: {short(held.prediction.measured_low)} .. "
        f"{short(held.prediction.measured_high)}), measured {short(held.measured.lr)}: "
        + ("within" if held.within else "OUTSIDE: do not trust the law's extrapolation")
    )


def transfer_sentence(power: LawFit) -> str:
    (alpha,), ((low, high),) = power.exponents, power.exponent_intervals
    (variable,) = power.variables
    shown = [figure(x, (low, high)) for x in (alpha, low, high)]
    interval = f"{power.level:.0%} interval {shown[1]} .. {shown[2]}"
    if low <= 0.0 <= high:
        return (
            f"the best lr does not measurably move with {variable}: exponent {shown[0]} "
            f"({interval} holds 0)"
        )
    return f"the best lr moves with {variable} as {variable}^{shown[0]} ({interval})"


def rung_rows(rungs: Sequence[Rung], ladder: Ladder) -> tuple[list[str], list[list[Any]]]:
    """The ladder's table: the varying axes, N, the optimum and its band."""
    axes = [ladder.axis, *(a for a in ladder.varies if a != ladder.axis)]
    header = [*axes, "N", "best lr", "band", "best loss", "runs in band", "at grid's end"]
    rows = []
    for r in rungs:
        values = {
            ladder.axis: r.point.size,
            "examples": r.point.examples,
            "epochs": f"{r.point.epochs:g}",
            "batch_size": r.point.batch_size,
        }
        rows.append(
            [
                *(values[a] for a in axes),
                r.parameters,
                short(r.optimum.lr),
                f"{short(r.optimum.low)} .. {short(r.optimum.high)}",
                f"{r.optimum.best_loss:.4g}",
                f"{r.optimum.runs} of {len(r.runs)}",
                "yes" if r.optimum.at_edge else "",
            ]
        )
    return [h.replace("_", " ") for h in header], rows


def forecast_lines(forecast: Forecast, ladder: Ladder) -> list[str]:
    t, lr = forecast.target, forecast.lr
    counted = f"N {t.parameters}" + (", extrapolated" if t.extrapolated else "")
    where = f"{ladder.axis} {t.size} ({counted}), {t.examples} examples x {t.epochs:g} epochs"
    at = (
        f"batch {forecast.at_batch_size}"
        if forecast.at_batch_size is not None
        else "its best batch size"
    )
    lines = [
        f"predicted best lr at {where}, {at}: {short(lr.value)} ({lr.level:.0%} interval "
        f"{short(lr.low)} .. {short(lr.high)}; by {forecast.lr_law})",
        *(f"warning: {w}" for w in lr.warnings),
    ]
    if forecast.batch_size is not None:
        b = forecast.batch_size
        lines += [
            f"predicted best batch size: {b.value:.4g} ({b.level:.0%} interval {b.low:.4g} .. "
            f"{b.high:.4g}; by {forecast.batch_law})",
            *(f"warning: {w}" for w in b.warnings),
        ]
    return lines


def summary(
    rungs: Sequence[Rung],
    ladder: Ladder,
    analysis: LawsAnalysis,
    coordinates: CoordinateCheck | None,
    center: float,
    from_range_test: bool,
) -> str:
    header, rows = rung_rows(rungs, ladder)
    where = f"the range test at the smallest {ladder.axis}" if from_range_test else "--lr"
    runs = sum(len(r.trials) for r in rungs)
    lines = [
        f"lrkit laws: {len(rungs)} points, {runs} runs; the grid centred on {short(center)} "
        f"({where})",
        "",
        text_table(header, rows),
    ]
    for law in analysis.laws:
        lines += ["", *law_lines(law)]
    if analysis.transfer is not None:
        lines += ["", transfer_sentence(analysis.transfer)]
    if analysis.forecast is not None:
        lines += ["", *forecast_lines(analysis.forecast, ladder)]
    if coordinates is not None:
        lines += ["", *coordinate_lines(coordinates)]
    return "\n".join(lines)


def law_lines(law: NamedLaw) -> list[str]:
    """The law in words, its held-out error (each form's, where several were compared), what
    bounds its intervals where the grid does, and its check."""
    role = "predicts" if law.chosen else "reported"
    lines = [f"{law.spec.name} ({law.spec.source}; {role}): {law_sentence(law)}"]
    forms = ", ".join(f"{f} {ln_error(e)}" for f, e in law.fit.compared if math.isfinite(e))
    if forms:
        lines.append(f"held-out error (ln, leave one group out): {forms}")
    elif math.isfinite(law.fit.held_out_error):
        lines.append(
            f"held-out error (ln, leave one group out): {ln_error(law.fit.held_out_error)}"
        )
    resolution = resolution_sentence(law.fit, law.spec.quantity)
    if resolution is not None:
        lines.append(resolution)
    return [*lines, check_sentence(law)]


def coordinate_lines(coordinates: CoordinateCheck) -> list[str]:
    """Each layer's slope of mean |activation| against width, and the verdict."""
    table = [
        [
            layer.layer,
            f"{layer.slope:.3g}",
            f"{layer.interval[0]:.3g} .. {layer.interval[1]:.3g}",
            layer.verdict,
        ]
        for layer in coordinates.layers
    ]
    return [
        f"coordinate check ({coordinates.steps} steps, mean |activation| against width):",
        text_table(["layer", "slope", "90% interval", ""], table),
        "flat: every layer keeps its size across widths"
        if coordinates.flat
        else "not flat: the parametrization does not keep activations fixed as width grows",
    ]


def document(
    rungs: Sequence[Rung],
    ladder: Ladder,
    analysis: LawsAnalysis,
    coordinates: CoordinateCheck | None,
    center: float,
) -> dict[str, Any]:
    """The JSON document of ``lrkit laws --json``: the rungs, the groups' optima, every law,
    the law that predicts the lr with its check, and the transfer, forecast and coordinate
    check where there are any."""
    lr_law = analysis.chosen("lr")
    assert lr_law is not None
    found: dict[str, Any] = {
        "center_lr": center,
        "axis": ladder.axis,
        "varies": list(ladder.varies),
        "rungs": [r.to_json() for r in rungs],
        "groups": [group_json(g, ladder.axis) for g in analysis.groups],
        "laws": [law.to_json() for law in analysis.laws],
        "law": lr_law.spec.name,
        "fit": lr_law.fit.to_json(),
        "check": None if lr_law.held_out is None else lr_law.held_out.to_json(),
    }
    if analysis.transfer is not None:
        found["transfer"] = transfer_json(analysis.transfer)
    if analysis.forecast is not None:
        found["predict"] = forecast_json(analysis.forecast, ladder.axis)
    if coordinates is not None:
        found["coordinate_check"] = coordinates.to_json()
    return found


def group_json(group: Group, axis: str) -> dict[str, Any]:
    """A group's values and its optima (the lr's; the batch size's where it varies)."""
    return {
        axis: group.size,
        "parameters": group.parameters,
        "examples": group.examples,
        "epochs": group.epochs,
        "optimum": group.lr.to_json(),
        "batch_size": None if group.batch_size is None else group.batch_size.to_json("batch_size"),
    }


def transfer_json(transfer: LawFit) -> dict[str, Any]:
    """The transfer law's exponent, its interval and whether the interval leaves out 0."""
    (alpha,), (interval,) = transfer.exponents, transfer.exponent_intervals
    return {
        "exponent": alpha,
        "interval": list(interval),
        "moves": not interval[0] <= 0.0 <= interval[1],
    }


def forecast_json(forecast: Forecast, axis: str) -> dict[str, Any]:
    """The target, the predicted lr (and batch size) with their intervals, laws and every
    warning."""
    target, lr = forecast.target, forecast.lr
    predict: dict[str, Any] = {
        axis: target.size,
        "parameters": target.parameters,
        "parameters_extrapolated": target.extrapolated or None,
        "examples": target.examples,
        "epochs": target.epochs,
        "lr": lr.value,
        "lr_interval": [lr.low, lr.high],
        "measured_interval": [lr.measured_low, lr.measured_high],
        "law": forecast.lr_law,
        "at_batch_size": forecast.at_batch_size,
        "warnings": list(lr.warnings),
    }
    batch = forecast.batch_size
    if batch is not None:
        predict["batch_size"] = batch.value
        predict["batch_size_interval"] = [batch.low, batch.high]
        predict["batch_law"] = forecast.batch_law
        predict["warnings"] += list(batch.warnings)
    return predict
