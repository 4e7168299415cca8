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
from lrkit.scaling import FORMULAS, RULES, compare_rules, noise_rule, scale_lr

if TYPE_CHECKING:
    from lrkit.sweep.analysis import BestLr

HELP = "\n\n".join(
    [
        "Recommend a learning rate for a new batch size from one known good at another, or "
        "compare the rules against a sweep (--compare).",
        "Rules: linear (lr * B'/B), sqrt (lr * sqrt(B'/B)), fit (lr * (B'/B)^k with k fitted to "
        "a sweep's best learning rates: give --store), noise (lr_max / (1 + B_noise/B'), "
        "McCandlish et al. 2018: give --noise-scale or --noise-json from lrkit noise).",
        "Examples: lrkit scale --lr 0.5 --batch-size 128 --to 512 --rule sqrt; "
        "lrkit scale --lr 0.5 --batch-size 16 --to 512 --rule noise --noise-json noise.json; "
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
    rule: Annotated[str, typer.Option(help="linear, sqrt, fit or noise.")] = "linear",
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
    k = None
    note = ""
    if rule == "fit":
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
        k = fit.k
        stderr = "" if fit.k_stderr is None else f" ± {fit.k_stderr:.2f}"
        sizes = ", ".join(map(str, fit.batch_sizes))
        note = f" with k = {fit.k:.3f}{stderr} fitted over batch sizes {sizes}"
    if rule == "noise" and measured_noise is None:
        raise LrkitValueError(
            "--rule noise needs the gradient noise scale: --noise-scale B or --noise-json FILE "
            "(from lrkit noise --json)"
        )
    result = scale_lr(lr, batch_size, to, rule, k, measured_noise)
    print(f"learning rate for batch size {to}: {format_number(result)}")
    print(f"{rule} rule: {FORMULAS[rule]}{note}")
    if rule == "noise":
        assert measured_noise is not None
        advice = noise_rule(lr, batch_size, measured_noise)
        print(f"lr_max = {format_number(advice.lr_max)}; {advice.describe_regime(to)}")


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
