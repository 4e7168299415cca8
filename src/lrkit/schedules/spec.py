"""Schedules written as text: ``NAME`` or ``NAME:key=value,key=value``.

The CLI's ``lrkit schedule step:gamma=0.5,step_size=100`` and the sweep's ``--schedule`` and
``--batch-size-schedule`` share this parser. A bare value after a list parameter continues
it: ``multistep:milestones=100,200,gamma=0.5``. A key may be given once.

A verb that takes a whole schedule as one option's text (``lrkit sweep --schedule``) has no
option for each parameter, so its errors must name that option and the text, and spell the
parameters as the text does (``gamma``, not ``--gamma``): :func:`lr_schedule_for_option` and
:func:`batch_size_schedule_for_option` build from such text with errors of that shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

from lrkit import validation as check
from lrkit.errors import LrkitValueError, option_name, quoted
from lrkit.schedules.base import Schedule
from lrkit.schedules.batch_size import BatchSizeSchedule, batch_size_steps
from lrkit.schedules.curve import ParamValue
from lrkit.schedules.registry import SCHEDULES, ScheduleInfo, describe, describe_factory

T = TypeVar("T")

RATE_PARAMS = ("base_lr", "max_lr")
"""The parameter that sets a schedule's learning rate: the first of these it takes."""


class ScheduleTextError(LrkitValueError):
    """A fault in the text's shape or keys (not in a value that its schedule rejects).

    ``detail`` is the fault without the text, so a verb can name its own option instead.
    """

    def __init__(self, spec: str, detail: str) -> None:
        self.detail = detail
        super().__init__(f"schedule spec {quoted(spec)}: {detail}")


@dataclass(frozen=True)
class Filled:
    """A parameter that a verb fills from one of its own options, so the text leaves it out."""

    value: ParamValue
    source: str
    """Where the value comes from, as the message says it: ``"the trial's --lr"``."""


def split_spec(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """``NAME:k=v,...`` -> (NAME, [(k, v text), ...]); a blank name is an error."""
    name, _, rest = spec.partition(":")
    if not name.strip():
        raise ScheduleTextError(
            spec,
            "the schedule name before ':' is blank; write NAME:key=value,... with NAME one of "
            + ", ".join(SCHEDULES),
        )
    return name.strip(), split_pairs(rest, spec)


def split_pairs(text: str, spec: str | None = None) -> list[tuple[str, str]]:
    """``k=v,k=v`` -> [(k, v text), ...]; a blank or repeated key is an error.

    ``spec`` is the whole text that ``text`` was cut from, for messages (default ``text``).
    """
    whole = text if spec is None else spec
    pieces: list[tuple[str, str]] = []
    for token in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = token.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            if not pieces:
                raise ScheduleTextError(whole, f"expected key=value, got {quoted(token)}")
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + "," + token)
        elif not key:
            raise ScheduleTextError(
                whole, f"the key in {quoted(token)} is blank (expected key=value)"
            )
        elif any(key == seen for seen, _ in pieces):
            raise ScheduleTextError(whole, f"{key} is given more than once")
        else:
            pieces.append((key, value.strip()))
    return pieces


def parse_params(
    spec: str,
    info: ScheduleInfo,
    pieces: list[tuple[str, str]],
    extra: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
) -> tuple[dict[str, ParamValue], dict[str, ParamValue]]:
    """Typed values of ``pieces`` for ``info``'s parameters, and separately for ``extra``
    keys (name -> (kind, choices)) that any schedule accepts (the warm-up's)."""
    params: dict[str, ParamValue] = {}
    extras: dict[str, ParamValue] = {}
    for key, value in pieces:
        if extra and key in extra:
            kind, choices = extra[key]
            extras[key] = parse_value(key, kind, value, choices)
            continue
        param = info.param(key)
        if param is None:
            takes = ", ".join(p.name for p in info.params) or "no parameters"
            raise ScheduleTextError(spec, f"{info.name} takes {takes}, not {key}")
        params[key] = parse_value(key, param.kind, value, param.choices)
    return params, extras


def parse_value(key: str, kind: str, text: str, choices: tuple[str, ...] = ()) -> ParamValue:
    """Convert one parameter's text by its kind, with a message naming the parameter."""
    try:
        if kind == "float":
            return float(text)
        if kind == "int":
            return int(text)
        if kind == "ints":
            return check.increasing_positive_ints(
                key, [int(v) for v in text.split(",") if v.strip()]
            )
        if kind == "flag":
            return check.choice(key, text.lower(), ("true", "false", "1", "0")) in ("true", "1")
        return check.choice(key, text, choices)
    except ValueError as exc:
        if isinstance(exc, LrkitValueError):
            raise
        wanted = {"float": "a number", "int": "an integer", "ints": "comma-separated integers"}[
            kind
        ]
        raise LrkitValueError(
            f"{key} must be {wanted}, got {quoted(text)}",
            cli_message=f"{option_name(key)} must be {wanted}, got {quoted(text)}",
        ) from None


def lr_schedule_for_option(
    option: str, spec: str, *, rate: Filled, defaults: Mapping[str, ParamValue]
) -> Schedule:
    """The schedule ``NAME[:key=value,...]`` given to ``option`` (``--schedule``).

    ``rate`` fills the schedule's rate parameter (base_lr, or max_lr for one that has no
    base_lr, as one_cycle), which the text must then leave out; ``defaults`` fill the
    parameters the text leaves out, where the schedule takes them. Every error names
    ``option`` and ``spec``.
    """
    with _naming(option, spec):
        name, pieces = split_spec(spec)
        info = describe(name)
        rate_param = next((p for p in RATE_PARAMS if info.param(p)), None)
        filled = {} if rate_param is None else {rate_param: rate}
        return _build(spec, info, pieces, SCHEDULES[name], filled, defaults)


def batch_size_schedule_for_option(option: str, spec: str, *, base: Filled) -> BatchSizeSchedule:
    """The batch-size schedule ``factor=F,milestones=E1,E2[,max_batch_size=M]`` given to
    ``option`` (:func:`~lrkit.schedules.batch_size.batch_size_steps`), growing from ``base``.
    Every error names ``option`` and ``spec``."""
    with _naming(option, spec):
        info = describe_factory("batch_size_steps", batch_size_steps)
        pieces = split_pairs(spec)
        filled = {"base_batch_size": base}
        return _build(spec, info, pieces, batch_size_steps, filled, {}, "factor=2,milestones=10,20")


def _build(
    spec: str,
    info: ScheduleInfo,
    pieces: list[tuple[str, str]],
    factory: Callable[..., T],
    filled: Mapping[str, Filled],
    defaults: Mapping[str, ParamValue],
    example: str = "",
) -> T:
    """``factory`` called with the text's values, ``filled`` and the ``defaults`` it takes."""
    for key, _ in pieces:
        if key in filled:
            raise LrkitValueError(f"{key} comes from {filled[key].source}; leave it out")
    # The text may give only what the verb does not fill: its message lists just those.
    open_info = replace(info, params=tuple(p for p in info.params if p.name not in filled))
    params, _ = parse_params(spec, open_info, pieces)
    defaults = {k: v for k, v in defaults.items() if open_info.param(k) and k not in params}
    missing = [
        p.name for p in open_info.params if p.required and p.name not in {**params, **defaults}
    ]
    if missing:
        hint = f" (e.g. {example})" if example else ""
        raise LrkitValueError(f"{info.name} needs {', '.join(missing)}{hint}")
    values = {**defaults, **params, **{k: f.value for k, f in filled.items()}}
    return factory(**values)


@contextmanager
def _naming(option: str, spec: str) -> Iterator[None]:
    """Re-raise a bad-input error as ``OPTION 'SPEC': fault``, with the parameters spelled as
    in the text: the verb has ``option``, not one option a parameter."""
    try:
        yield
    except ScheduleTextError as exc:
        raise LrkitValueError(f"{option} {quoted(spec)}: {exc.detail}") from exc
    except LrkitValueError as exc:
        raise LrkitValueError(f"{option} {quoted(spec)}: {exc}") from exc
