"""``lrkit schedule``: print, export and plot learning-rate schedules."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from lrkit import validation as check
from lrkit.cli.output import check_result_outputs, csv_table, dumps, text_table, write_json
from lrkit.errors import LrkitValueError, option_name
from lrkit.schedules import compose, registry
from lrkit.schedules.base import Schedule
from lrkit.schedules.curve import ParamValue, sample
from lrkit.schedules.spec import parse_params, parse_value, split_spec

HELP = "\n\n".join(
    [
        "Print a learning-rate schedule as a table (or CSV/JSON) and plot it.",
        "NAME may carry its own parameters: NAME:key=value,key=value "
        "(step:gamma=0.5,step_size=100, multistep:milestones=100,200, "
        "cosine:warmup_iters=50). Several names draw one figure with a curve each; options "
        "then apply to every schedule that takes them. --compare with no name compares "
        "Caffe's policies (fixed, step, multistep, exp, inv, poly). --list shows every "
        "schedule with its formula.",
        "Example, the textbook's step table: lrkit schedule step --base-lr 0.1 --gamma 0.9 "
        "--step-size 50 --iters 350 --every 50",
    ]
)

FORMATS = ("table", "csv", "json")
MAX_ROWS = 100_000
"""Rows printed at most (the figure samples at most ~4000 points a curve, whatever --iters)."""
WARMUP_KINDS = {
    "warmup_iters": ("int", ()),
    "warmup_mode": ("choice", ("linear", "exp")),
    "warmup_start_factor": ("float", ()),
}

# A schedule that ends (poly, linear, cosine, one_cycle) ends where the table does unless the
# parameter is given.
ENDS_AT_ITERS = "max_iter"
PARAMETERS_PANEL = "Schedule parameters (each applies to the schedules it names)"
Command = TypeVar("Command", bound=Callable[..., None])

# Parameters for `--compare` with no names: Caffe's six policies over 300 iterations, starting
# from the textbook's base_lr 0.1 and gamma 0.9 where a policy takes them.
CAFFE_COMPARISON: tuple[tuple[str, dict[str, ParamValue]], ...] = (
    ("fixed", {"base_lr": 0.1}),
    ("step", {"base_lr": 0.1, "gamma": 0.9, "step_size": 50}),
    ("multistep", {"base_lr": 0.1, "gamma": 0.9, "milestones": (50, 100, 200)}),
    ("exp", {"base_lr": 0.1, "gamma": 0.995}),
    ("inv", {"base_lr": 0.1, "gamma": 0.01, "power": 0.75}),
    ("poly", {"base_lr": 0.1, "power": 2.0, "max_iter": 300}),
)


@dataclass(frozen=True)
class CurveRequest:
    """One curve asked for on the command line: a name and the parameters given with it."""

    label: str
    name: str
    params: dict[str, ParamValue]
    warmup: dict[str, ParamValue]


def with_registry_options(command: Command) -> Command:
    """Give ``command``, which takes the schedules' parameters as ``**given``, one option for
    each parameter of every registered schedule, so a new factory's parameter becomes an
    option without an edit here.

    typer reads a command's options from ``inspect.signature`` (which returns
    ``__signature__`` when a function has one) and its types from ``get_type_hints`` (which
    reads ``__annotations__``), so both are set; the signature makes every option keyword-only
    because typer passes them all by name.
    """
    signature = inspect.signature(command, eval_str=True)
    keyword = inspect.Parameter.KEYWORD_ONLY
    own = [
        p.replace(kind=keyword)
        for p in signature.parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    options = [
        inspect.Parameter(shared.name, keyword, default=None, annotation=_annotation(shared))
        for shared in registry.all_params()
    ]
    clash = {p.name for p in own} & {p.name for p in options}
    if clash:
        raise TypeError(f"schedule parameters {sorted(clash)} clash with the command's own")
    parameters = own + options
    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__annotations__["return"] = signature.return_annotation
    return command


def option_help(shared: registry.SharedParam) -> str:
    """The help of one parameter's option: each schedule that takes it, with what the
    parameter means there (from the factory's docstring) and its default."""
    meanings: dict[str, list[str]] = {}
    for name, param in shared.uses:
        meaning = _plain(param.help).rstrip(".")
        if param.default is not None and param.kind != "flag":
            meaning += f", default {param.default}"
        meanings.setdefault(meaning, []).append(name)
    sentences = [f"{', '.join(names)}: {meaning}." for meaning, names in meanings.items()]
    if shared.name == ENDS_AT_ITERS:
        sentences.append("Default here: --iters.")
    return " ".join(sentences)


def _annotation(shared: registry.SharedParam) -> object:
    """``Annotated[type | None, typer.Option(...)]`` for one parameter, by its kind; a list
    arrives as text (parsed with the spec's rules), a choice as text (checked by the factory,
    whose message names the choices)."""
    value_type: object = {"float": float, "int": int, "flag": bool}.get(shared.kind, str)
    metavar = "INT,INT,..." if shared.kind == "ints" else None
    option = typer.Option(
        shared.option,
        help=option_help(shared),
        metavar=metavar,
        show_default=False,
        rich_help_panel=PARAMETERS_PANEL,
    )
    return Annotated[value_type | None, option]  # type: ignore[operator]


def _plain(text: str) -> str:
    return text.replace("``", "")


@with_registry_options
def schedule(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Schedule name(s), optionally NAME:key=value,...", show_default=False),
    ] = None,
    list_schedules: Annotated[
        bool, typer.Option("--list", help="List schedules, parameters and formulas.")
    ] = False,
    compare: Annotated[
        bool, typer.Option("--compare", help="Draw several schedules in one figure.")
    ] = False,
    warmup_iters: Annotated[
        int | None, typer.Option(help="Warm-up iterations in front of the schedule.")
    ] = None,
    warmup_mode: Annotated[str, typer.Option(help="Warm-up shape: linear or exp.")] = "linear",
    warmup_start_factor: Annotated[
        float | None, typer.Option(help="Warm-up's first lr / target.")
    ] = None,
    iters: Annotated[int, typer.Option(help="Print iterations below this.")] = 1000,
    every: Annotated[
        int | None, typer.Option(help="Print every K-th iteration (default: iters/20).")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    plot: Annotated[
        Path | None, typer.Option(help="Write the figure (.png, .svg or .pdf).")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the result as JSON.")
    ] = None,
    log_y: Annotated[bool, typer.Option("--log-y", help="Logarithmic learning-rate axis.")] = False,
    **given: ParamValue,
) -> None:
    """``given``: the schedule parameters' options (one a registry parameter, None when not
    given), added to the signature by :func:`with_registry_options`."""
    if list_schedules:
        print(describe_all())
        return
    output_format = check.choice("format", output_format, FORMATS)
    iters, every = _check_rows(iters, every)
    outputs = check_result_outputs(json_file, plot)
    shared = _given_params(given)
    shared_warmup = _shared_warmup(warmup_iters, warmup_mode, warmup_start_factor)
    requests = _requests(names or [], compare)
    single = len(requests) == 1
    built = [_build(r, shared, shared_warmup, single=single, iters=iters) for r in requests]
    curves = [sample(f, iters, every, name=n, params=p) for n, f, p in built]
    if not single:
        _check_all_used(shared, requests)
    labels = [r.label for r in requests]
    document = curves[0].to_json() if single else {"schedules": [c.to_json() for c in curves]}
    if output_format == "json":
        print(dumps(document))
    else:
        header = ["iteration", "lr"] if single else ["iteration", *labels]
        rows = [[t, *(c.lrs[i] for c in curves)] for i, t in enumerate(curves[0].iterations)]
        print(text_table(header, rows) if output_format == "table" else csv_table(header, rows))
    if json_file is not None:
        with outputs.writing("--json", json_file):
            write_json(json_file, document)
    if plot is not None:
        from lrkit.plots.schedules import plot_schedules

        # The figure evaluates every iteration (up to ~4000 points), whatever --every is.
        dense = max(1, iters // 4000)
        drawn = [sample(f, iters, dense, name=n, params=p) for n, f, p in built]
        with outputs.writing("--plot", plot):
            plot_schedules(drawn, plot, labels=labels, log_y=log_y)
        print(f"wrote {plot}", file=sys.stderr)


def _check_rows(iters: int, every: int | None) -> tuple[int, int]:
    """--iters and --every (default: a twentieth of the iterations), printing at most
    ``MAX_ROWS`` rows."""
    iters = check.positive_int("iters", iters)
    every = check.positive_int("every", every) if every is not None else max(1, iters // 20)
    printed = -(-iters // every)
    if printed > MAX_ROWS:
        raise LrkitValueError(
            f"--iters {iters} with --every {every} prints {printed} rows; at most {MAX_ROWS}: "
            "raise --every or lower --iters"
        )
    return iters, every


def _shared_warmup(
    warmup_iters: int | None, warmup_mode: str, warmup_start_factor: float | None
) -> dict[str, ParamValue]:
    """The warm-up options, for every curve (a curve's own warm-up keys win)."""
    warmup: dict[str, ParamValue] = {"warmup_mode": warmup_mode}
    if warmup_iters is not None:
        warmup["warmup_iters"] = warmup_iters
    if warmup_start_factor is not None:
        warmup["warmup_start_factor"] = warmup_start_factor
    return warmup


def _build(
    request: CurveRequest,
    shared: dict[str, ParamValue],
    shared_warmup: dict[str, ParamValue],
    *,
    single: bool,
    iters: int,
) -> tuple[str, Schedule, dict[str, ParamValue]]:
    """One curve's name, schedule (behind its warm-up, where it has one) and parameters."""
    params = _merge(request, shared, single=single, iters=iters)
    sched = registry.create(request.name, **params)
    warm = {**shared_warmup, **request.warmup}
    if "warmup_iters" in warm:
        sched = compose.warmup(
            sched,
            warm["warmup_iters"],  # type: ignore[arg-type]
            warm["warmup_mode"],  # type: ignore[arg-type]
            warm.get("warmup_start_factor"),  # type: ignore[arg-type]
        )
        params = {**params, **warm}
    return request.name, sched, params


def _given_params(given: dict[str, ParamValue]) -> dict[str, ParamValue]:
    """The parameters given as options, typed: a list parameter arrives as text."""
    kinds = {shared.name: shared.kind for shared in registry.all_params()}
    return {
        key: parse_value(key, "ints", str(value)) if kinds[key] == "ints" else value
        for key, value in given.items()
        if value is not None
    }


def _requests(names: list[str], compare: bool) -> list[CurveRequest]:
    if not names:
        if not compare:
            raise LrkitValueError(
                "give a schedule name, or --compare, or --list; names: "
                + ", ".join(registry.schedule_names())
            )
        return [CurveRequest(n, n, dict(p), {}) for n, p in CAFFE_COMPARISON]
    requests = [parse_request(spec) for spec in names]
    if len({r.label for r in requests}) < len(requests):
        raise LrkitValueError("the same schedule is named twice with the same parameters")
    if len(requests) > 1 and len({r.name for r in requests}) == len(requests):
        requests = [CurveRequest(r.name, r.name, r.params, r.warmup) for r in requests]
    return requests


def parse_request(spec: str) -> CurveRequest:
    """``NAME`` or ``NAME:key=value,key=value``, warm-up keys allowed for any schedule."""
    name, pieces = split_spec(spec)
    info = registry.describe(name)
    params, warmup = parse_params(spec, info, pieces, WARMUP_KINDS)
    return CurveRequest(spec, info.name, params, warmup)


def _merge(
    request: CurveRequest, shared: dict[str, ParamValue], *, single: bool, iters: int
) -> dict[str, ParamValue]:
    info = registry.describe(request.name)
    if single:
        params = {**shared, **request.params}
    else:
        params = {k: v for k, v in shared.items() if info.param(k)} | request.params
    if info.param(ENDS_AT_ITERS) and ENDS_AT_ITERS not in params:
        params[ENDS_AT_ITERS] = iters
    return params


def _check_all_used(shared: dict[str, ParamValue], requests: list[CurveRequest]) -> None:
    names = sorted({r.name for r in requests})
    for key in shared:
        if not any(registry.describe(n).param(key) for n in names):
            raise LrkitValueError(
                f"{key} does not apply to any of {', '.join(names)}",
                cli_message=f"{option_name(key)} does not apply to any of {', '.join(names)}",
            )


def describe_all() -> str:
    """The text of ``--list``: each schedule's signature, summary, formula and parameters."""
    blocks = []
    for name in registry.schedule_names():
        info = registry.describe(name)
        signature = ", ".join(
            p.name if p.required else f"{p.name}={p.default!r}" for p in info.params
        )
        lines = [f"{name}({signature})", f"    {_plain(info.summary)}"]
        lines += [f"      {line}" for line in info.formula.splitlines()]
        lines += [f"    {p.option:<20} {_plain(p.help)}" for p in info.params]
        blocks.append("\n".join(lines))
    blocks.append(
        "Any schedule takes a warm-up in front: --warmup-iters N [--warmup-mode linear|exp]\n"
        "[--warmup-start-factor S], or NAME:warmup_iters=N,... for one curve\n"
        "(library: lrkit.schedules.warmup; joins: lrkit.schedules.join)."
    )
    return "\n\n".join(blocks)
