"""Schedules written as text: ``NAME`` or ``NAME:key=value,key=value``.

The CLI's ``lrkit schedule step:gamma=0.5,step_size=100`` and the sweep's ``--schedule`` and
``--batch-size-schedule`` share this parser. A bare value after a list parameter continues
it: ``multistep:milestones=100,200,gamma=0.5``.
"""

from __future__ import annotations

from collections.abc import Mapping

from lrkit import validation as check
from lrkit.errors import LrkitValueError, option_name
from lrkit.schedules.curve import ParamValue
from lrkit.schedules.registry import ScheduleInfo


def split_spec(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """``NAME:k=v,...`` -> (NAME, [(k, v text), ...])."""
    name, _, rest = spec.partition(":")
    pieces: list[tuple[str, str]] = []
    for token in filter(None, (t.strip() for t in rest.split(","))):
        key, sep, value = token.partition("=")
        if sep:
            pieces.append((key.strip().replace("-", "_"), value.strip()))
        elif pieces:
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + "," + token)
        else:
            raise LrkitValueError(
                f"schedule spec {spec!r}: expected key=value after ':', got {token!r}"
            )
    return name.strip(), pieces


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
            takes = ", ".join(p.name for p in info.params)
            raise LrkitValueError(f"schedule spec {spec!r}: {info.name} takes {takes}, not {key}")
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
            f"{key} must be {wanted}, got {text!r}",
            cli_message=f"{option_name(key)} must be {wanted}, got {text!r}",
        ) from None
