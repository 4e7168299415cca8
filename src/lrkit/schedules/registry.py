"""The schedules by name, with their parameters and formulas read from the factories.

One table serves the library, the CLI (``lrkit schedule --list``) and configuration files.
Each entry's parameters come from the factory's signature and type hints, and its summary,
formula and parameter help from the factory's docstring, so there is one source for each.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from lrkit.errors import LrkitValueError, option_name, quoted
from lrkit.schedules import annealing, caffe, cyclical, stable_decay
from lrkit.schedules.base import Schedule

SCHEDULES: Mapping[str, Callable[..., Schedule]] = {
    # Caffe's policies
    "fixed": caffe.fixed,
    "step": caffe.step,
    "multistep": caffe.multistep,
    "exp": caffe.exp,
    "inv": caffe.inv,
    "poly": caffe.poly,
    "sigmoid": caffe.sigmoid,
    # modern ones
    "constant": annealing.constant,
    "linear": annealing.linear,
    "cosine": annealing.cosine,
    "cosine_restarts": annealing.cosine_restarts,
    "cyclic": cyclical.cyclic,
    "one_cycle": cyclical.one_cycle,
    "wsd": stable_decay.wsd,
}

ParamKind = Literal["float", "int", "ints", "choice", "flag"]


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a schedule factory."""

    name: str
    kind: ParamKind
    required: bool
    default: float | int | str | bool | None
    choices: tuple[str, ...]
    help: str

    @property
    def option(self) -> str:
        return option_name(self.name)


@dataclass(frozen=True)
class ScheduleInfo:
    """A registered schedule: its name, summary, formula and parameters."""

    name: str
    summary: str
    formula: str
    params: tuple[ParamInfo, ...]

    def param(self, name: str) -> ParamInfo | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class SharedParam:
    """One parameter name across the registry: its kind and every schedule that takes it.

    A front end with one option a parameter (``lrkit schedule --gamma``) needs this view: the
    option has one type, and its help has to make sense for each schedule it reaches.
    """

    name: str
    kind: ParamKind
    choices: tuple[str, ...]
    uses: tuple[tuple[str, ParamInfo], ...]
    """(schedule name, that schedule's parameter), in the registry's order."""

    @property
    def option(self) -> str:
        return option_name(self.name)


def all_params() -> tuple[SharedParam, ...]:
    """Every parameter of every registered schedule, once a name, in order of first use.

    Raises :class:`TypeError` when two factories give one name different kinds: one option
    could not take both, so the factories must agree.
    """
    uses: dict[str, list[tuple[str, ParamInfo]]] = {}
    for name in SCHEDULES:
        for param in describe(name).params:
            uses.setdefault(param.name, []).append((name, param))
    return tuple(_shared(key, tuple(found)) for key, found in uses.items())


def _shared(key: str, uses: tuple[tuple[str, ParamInfo], ...]) -> SharedParam:
    first_name, first = uses[0]
    for name, param in uses[1:]:
        if param.kind != first.kind:
            raise TypeError(
                f"parameter {key} is {first.kind} in {first_name} but {param.kind} in {name}"
            )
    choices = tuple(dict.fromkeys(c for _, p in uses for c in p.choices))
    return SharedParam(key, first.kind, choices, uses)


def schedule_names() -> tuple[str, ...]:
    """The registered names, in the registry's order."""
    return tuple(SCHEDULES)


def unknown_schedule_error(name: str) -> LrkitValueError:
    return LrkitValueError(
        f"unknown schedule {quoted(name)}; choose one of: {', '.join(SCHEDULES)}"
    )


@cache
def describe(name: str) -> ScheduleInfo:
    """The summary, formula and parameters of the schedule registered as ``name``."""
    factory = SCHEDULES.get(name)
    if factory is None:
        raise unknown_schedule_error(name)
    return describe_factory(name, factory)


def describe_factory(name: str, factory: Callable[..., object]) -> ScheduleInfo:
    """Parameters (from the signature and type hints), summary and formula (from the
    docstring) of any factory written in the registry's style."""
    summary, formula, helps = _parse_docstring(inspect.getdoc(factory) or "")
    hints = typing.get_type_hints(factory)
    params = []
    for p in inspect.signature(factory).parameters.values():
        kind, choices = _kind_of(hints[p.name])
        required = p.default is inspect.Parameter.empty
        params.append(
            ParamInfo(
                name=p.name,
                kind=kind,
                required=required,
                default=None if required else p.default,
                choices=choices,
                help=helps.get(p.name, ""),
            )
        )
    return ScheduleInfo(name, summary, formula, tuple(params))


def create(name: str, **params: object) -> Schedule:
    """Build the schedule registered as ``name`` from keyword parameters.

    Raises :class:`~lrkit.errors.LrkitValueError` for an unknown name, a parameter the
    schedule does not take, or a required one that is missing; the factory checks values.
    """
    info = describe(name)
    known = {p.name for p in info.params}
    takes = ", ".join(p.name for p in info.params)
    takes_cli = ", ".join(p.option for p in info.params)
    for key in params:
        if key not in known:
            raise LrkitValueError(
                f"{name} does not take {key} (it takes {takes})",
                cli_message=f"{option_name(key)} does not apply to {name} (it takes {takes_cli})",
            )
    for p in info.params:
        if p.required and p.name not in params:
            raise LrkitValueError(
                f"{name} needs {p.name}: {_clause(p.help) or p.kind}",
                cli_message=f"{name} needs {p.option}: {_clause(p.help) or p.kind}",
            )
    return SCHEDULES[name](**params)


def _clause(text: str) -> str:
    return text.replace("``", "").rstrip(".")


def _kind_of(hint: object) -> tuple[ParamKind, tuple[str, ...]]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        # `int | None`: an optional value of the non-None type.
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _kind_of(inner[0])
    if origin is Literal:
        return "choice", tuple(str(a) for a in typing.get_args(hint))
    if hint is bool:
        return "flag", ()
    if hint is int:
        return "int", ()
    if hint is float:
        return "float", ()
    if origin is not None and issubclass(origin, Sequence):
        return "ints", ()
    raise TypeError(f"no parameter kind for type hint {hint!r}")


def _parse_docstring(doc: str) -> tuple[str, str, dict[str, str]]:
    """Split a factory's docstring into summary, formula block and per-argument help."""
    lines = doc.splitlines()
    summary_lines: list[str] = []
    for line in lines:
        if not line.strip():
            break
        summary_lines.append(line.strip())
    formula_lines: list[str] = []
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("lr(")), None)
    if start is not None:
        end = start
        while end < len(lines) and lines[end].strip():
            end += 1
        # A following paragraph that defines the formula's terms belongs to it.
        if end + 1 < len(lines) and lines[end + 1].lstrip().startswith(("where", "with")):
            end += 1
            while end < len(lines) and lines[end].strip():
                end += 1
        formula_lines = [line.strip() for line in lines[start:end] if line.strip()]
    helps: dict[str, str] = {}
    if "Args:" in lines:
        current = ""
        for line in lines[lines.index("Args:") + 1 :]:
            if not line.strip():
                break
            body = line.strip()
            head, sep, rest = body.partition(": ")
            if line.startswith("    ") and not line.startswith("        ") and sep:
                current = head
                helps[current] = rest
            elif current:
                helps[current] += " " + body
    return " ".join(summary_lines), "\n".join(formula_lines), helps
