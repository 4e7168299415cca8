"""``lrkit scale``: the learning rate for another batch size, by the linear, square-root,
fitted or noise rule; or every rule against a sweep's measured best learning rates."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lrkit import validation as check
from lrkit.cli.output import Outputs, check_outputs, format_number, text_table, write_json
from lrkit.errors import LrkitValueError
from lrkit.scaling import (
    BETA2_FORMULA,
    FORMULAS,
    NOISE_RULES,
    RULES,
    WEIGHT_DECAY_FORMULA,
    beta2_half_life,
    compare_rules,
    noise_rule,
    scale_beta2,
    scale_lr,
    scale_weight_decay,
    surge_rule,
    weight_decay_timescale,
)

if TYPE_CHECKING:
    from lrkit.sweep.analysis import BestLr

HELP = "\n\n".join(
    [
        "Recommend a learning rate for a new batch size from one known good at another, or "
        "compare the rules against a sweep (--compare).",
        "Rules: linear (lr * B'/B), sqrt (lr * sqrt(B'/B)), fit (lr * (B'/B)^k with k fitted to "
        "a sweep's best learning rates: give --store), noise (lr_max / (1 + B_noise/B'), "
        "McCandlish et al. 2018: SGD's best lr, linear below B_noise and flat above), surge "
        "(lr_peak / s(B'), s(B) = (sqrt(B_noise/B) + sqrt(B/B_noise)) / 2, Li et al. 2024: "
        "Adam's best lr, rising as sqrt(B') to its peak at B_noise, then falling); noise and "
        "surge need --noise-scale or --noise-json from lrkit noise.",
        "What else moves with B: --beta2 gives Adam's beta2' = beta2^(B'/B), which keeps the "
        "half-life of its average of squared gradients in examples, B ln(1/2) / ln(beta2) "
        "(Marek et al. 2025); --weight-decay gives AdamW's wd' = wd (lr/lr') (B'/B), which "
        "keeps the timescale of its weights, tau = B / (lr wd) examples, in epochs (Wang & "
        "Aitchison 2024), lr' the rule's.",
        "Examples: lrkit scale --lr 0.5 --batch-size 128 --to 512 --rule sqrt; "
        "lrkit scale --lr 0.5 --batch-size 16 --to 512 --rule noise --noise-json noise.json; "
        "lrkit scale --lr 3e-4 --batch-size 64 --to 512 --rule sqrt --beta2 0.999 "
        "--weight-decay 0.1; "
        "lrkit scale --compare --store runs.sqlite",
    ]
)


def scale(
    lr: Annotated[
        float | None, typer.Option("--lr", help="A good learning rate at --batch-size.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="The batch size it was good at.")
    ] = None,
    to: Annotated[int | None, typer.Option("--to", help="The batch size to scale to.")] = None,
    rule: Annotated[str, typer.Option(help="linear, sqrt, fit, noise or surge.")] = "linear",
    beta2: Annotated[
        float | None,
        typer.Option(help="Adam's beta2 at --batch-size: also give the one for --to."),
    ] = None,
    weight_decay: Annotated[
        float | None,
        typer.Option(help="AdamW's weight decay at --batch-size: also give the one for --to."),
    ] = None,
    store: Annotated[
        Path | None, typer.Option(help="A sweep's store, for --rule fit and --compare.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The sweep in --store (default: all its trials).")
    ] = None,
    noise_scale: Annotated[
        float | None, typer.Option(help="The gradient noise scale B_noise, for --rule noise.")
    ] = None,
    noise_json: Annotated[
        Path | None,
        typer.Option(help="lrkit noise's --json output: its critical batch size is B_noise."),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Every rule against the best learning rates of the sweep in --store.",
        ),
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the comparison as JSON.")
    ] = None,
) -> None:
    rule = check.choice("rule", rule, RULES)
    if json_file is not None and not compare:
        raise LrkitValueError("--json belongs to --compare (it writes the comparison)")
    _check_moving(compare, beta2, weight_decay)
    outputs = check_outputs(
        [("--json", json_file)], others=[("--store", store), ("--noise-json", noise_json)]
    )
    measured_noise = _noise_scale(noise_scale, noise_json)
    if compare:
        _compare(store, name, measured_noise, batch_size, json_file, outputs)
        return
    missing = [
        o for o, v in (("--lr", lr), ("--batch-size", batch_size), ("--to", to)) if v is None
    ]
    if missing:
        raise LrkitValueError(
            f"{', '.join(missing)} needed: the learning rate good at a batch size, and the "
            "batch size to scale to (or --compare --store FILE)"
        )
    assert lr is not None and batch_size is not None and to is not None
    k, note = _fitted_k(rule, store, name)
    if rule in NOISE_RULES and measured_noise is None:
        raise LrkitValueError(
            f"--rule {rule} needs the gradient noise scale: --noise-scale B or --noise-json FILE "
            "(from lrkit noise --json)"
        )
    result = scale_lr(lr, batch_size, to, rule, k, measured_noise)
    print(f"learning rate for batch size {to}: {format_number(result)}")
    print(f"{rule} rule: {FORMULAS[rule]}{note}")
    for line in (
        *_noise_lines(rule, lr, batch_size, to, measured_noise),
        *_moving_with_b(lr, result, batch_size, to, beta2, weight_decay),
    ):
        print(line)


def _check_moving(compare: bool, beta2: float | None, weight_decay: float | None) -> None:
    """--beta2 in (0, 1) and --weight-decay >= 0, and neither with --compare."""
    if compare:
        for option, given in (("--beta2", beta2), ("--weight-decay", weight_decay)):
            if given is not None:
                raise LrkitValueError(
                    f"{option} is scaled to --to, which --compare does not take: leave it out"
                )
    if beta2 is not None:
        check.float_in("beta2", beta2, 0.0, 1.0, low_open=True, high_open=True)
    if weight_decay is not None:
        check.nonnegative_float("weight_decay", weight_decay)


def _fitted_k(rule: str, store: Path | None, name: str | None) -> tuple[float | None, str]:
    """The fit rule's k from the sweep in ``store``, with its note (None and "" otherwise)."""
    if rule != "fit":
        return None, ""
    if store is None:
        raise LrkitValueError(
            "--rule fit needs --store: the sweep whose best learning rates give k"
        )
    from lrkit.sweep.analysis import fit_best

    fit = fit_best(_best(store, name))
    if fit is None:
        raise LrkitValueError(
            f"--store {store}: the fit needs two batch sizes or more, "
            "each with two learning rates or more"
        )
    stderr = "" if fit.k_stderr is None else f" ± {fit.k_stderr:.2f}"
    sizes = ", ".join(map(str, fit.batch_sizes))
    return fit.k, f" with k = {fit.k:.3f}{stderr} fitted over batch sizes {sizes}"


def _noise_lines(rule: str, lr: float, batch_size: int, to: int, noise: float | None) -> list[str]:
    """The noise rule's lr_max and regime, or the surge's peak."""
    if noise is None or rule not in NOISE_RULES:
        return []
    if rule == "noise":
        advice = noise_rule(lr, batch_size, noise)
        return [f"lr_max = {format_number(advice.lr_max)}; {advice.describe_regime(to)}"]
    peak = surge_rule(lr, batch_size, noise).lr_peak
    return [f"lr_peak = {format_number(peak)} at batch size {format_number(noise)}"]


def _moving_with_b(
    lr: float,
    new_lr: float,
    batch_size: int,
    to: int,
    beta2: float | None,
    weight_decay: float | None,
) -> list[str]:
    """The lines for Adam's beta2 and AdamW's weight decay at ``to``, where given."""
    lines = []
    if beta2 is not None:
        new_beta2 = scale_beta2(beta2, batch_size, to)
        lines.append(
            f"beta2 for batch size {to}: {new_beta2:.6g} ({BETA2_FORMULA}: its half-life stays "
            f"{beta2_half_life(beta2, batch_size):.4g} examples)"
        )
    if weight_decay is not None:
        new_wd = scale_weight_decay(weight_decay, lr, new_lr, batch_size, to)
        tau = weight_decay_timescale(weight_decay, lr, batch_size)
        kept = (
            f"tau = B / (lr wd) stays {tau:.4g} examples"
            if math.isfinite(tau)
            else "no decay, nothing to keep"
        )
        lines.append(
            f"weight decay for batch size {to}: {new_wd:.4g} ({WEIGHT_DECAY_FORMULA}: {kept})"
        )
    return lines


def _noise_scale(value: float | None, path: Path | None) -> float | None:
    if value is not None and path is not None:
        raise LrkitValueError("give --noise-scale or --noise-json, not both")
    if value is not None:
        return check.positive_float("noise_scale", value)
    if path is None:
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        found = document["critical_batch_size"]
    except (OSError, ValueError, KeyError, TypeError):
        raise LrkitValueError(
            f"--noise-json {path}: not a file written by lrkit noise --json "
            "(no critical_batch_size)"
        ) from None
    if not isinstance(found, (int, float)) or not math.isfinite(found) or found <= 0:
        raise LrkitValueError(f"--noise-json {path}: its critical batch size was not measured")
    return float(found)


def _best(store: Path, name: str | None) -> dict[int, BestLr]:
    """The best lr by batch size of sweep ``name`` (or of every trial) in the store, which is
    only read; a name the store does not hold is refused, listing the ones it does."""
    from lrkit.sweep.analysis import best_lr_by_batch_size
    from lrkit.sweep.store import Store

    with Store.open(store, read_only=True) as opened:
        if name is not None:
            opened.check_sweep(name)
        trials = opened.trials(name, with_points=False)
    return best_lr_by_batch_size(trials)


def _compare(
    store: Path | None,
    name: str | None,
    noise: float | None,
    reference: int | None,
    json_file: Path | None,
    outputs: Outputs,
) -> None:
    if store is None:
        raise LrkitValueError("--compare needs --store: the sweep to compare the rules with")
    best = _best(store, name)
    # A batch size tried at one lr has no measured optimum: like the fit, leave it out.
    measured = {b: w.lr for b, w in best.items() if len(w.scores) >= 2}
    skipped = sorted(set(best) - set(measured))
    if len(measured) < 2:
        raise LrkitValueError(
            f"--store {store}: comparing rules needs two batch sizes or more, each tried at "
            "two learning rates or more"
        )
    comparison = compare_rules(measured, reference, noise)
    rules = list(comparison.predictions)
    rows: list[list[str]] = []
    for size, lr in comparison.measured.items():
        mark = " (reference)" if size == comparison.reference else ""
        rows.append(
            [f"{size}{mark}", format_number(lr)]
            + [f"{comparison.predictions[r][size]:.3g}" for r in rules]
        )
    rows.append(["rms log2 error", "-"] + [f"{comparison.errors[r]:.2f}" for r in rules])
    print(
        f"best learning rate by batch size in {store}, against each rule from batch "
        f"{comparison.reference}:"
    )
    print(text_table(["batch size", "measured", *rules], rows))
    print("")
    for rule in rules:
        print(
            f"{rule}: {FORMULAS[rule]}"
            + (f" ({comparison.notes[rule]})" if rule in comparison.notes else "")
        )
    if skipped:
        print(f"left out (one learning rate tried): batch sizes {', '.join(map(str, skipped))}")
    winner = min(rules, key=lambda r: comparison.errors[r])
    print(
        f"closest: {winner} (off by a factor of {2 ** comparison.errors[winner]:.2f} on average; "
        "an error of 1.0 is a factor of 2)"
    )
    if json_file is not None:
        with outputs.writing("--json", json_file):
            write_json(json_file, comparison.to_json())
