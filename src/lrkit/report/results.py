"""Results read back from the JSON that ``lrkit find --json`` and ``lrkit noise --json``
write, as the objects their figures are drawn from.

A file is a user's input: every field the report uses is read through :class:`Fields`, which
checks its kind where it reads it, so a file with a field missing or of the wrong kind is
refused with the option, the file and the field (``rounds[0].curve_lrs``) named, instead of
failing somewhere in a figure.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lrkit.errors import LrkitValueError, quoted
from lrkit.noise.tracking import NoisePoint, NoiseRun
from lrkit.rangetest.core import Hold, Point, RoundRecord
from lrkit.rangetest.result import RangeTestResult, RoundResult
from lrkit.rangetest.suggestions import find_turning_point
from lrkit.sweep.engines.names import SEQUENTIAL


class FieldError(Exception):
    """A field of a result file that is missing or of the wrong kind."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field {quoted(field)} {problem}")


_REQUIRED: Any = object()
"""The default of a field that must be there."""


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 20 else "a string"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    return repr(value)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _wrong(path: str, wanted: str, value: object) -> FieldError:
    return FieldError(path, f"is not {wanted} (got {_kind(value)})")


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _wrong(path, "a string", value)
    return value


def _integer(value: Any, path: str, least: int | None = None) -> int:
    whole = _is_number(value) and math.isfinite(value) and float(value).is_integer()
    if not whole or (least is not None and value < least):
        raise _wrong(path, "an integer" + ("" if least is None else f" >= {least}"), value)
    return int(value)


def _number(value: Any, path: str, null: float | None = None) -> float:
    """A number; where ``null`` is given, JSON null stands for it (nan for a loss that was not
    finite: the writer stores those as null)."""
    if value is None and null is not None:
        return null
    if not _is_number(value):
        raise _wrong(path, "a number", value)
    return float(value)


def _optional_number(value: object, path: str) -> float | None:
    return None if value is None else _number(value, path)


def _lr(value: Any, path: str) -> float:
    """A learning rate: finite and > 0 (it is drawn on a log axis)."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise _wrong(path, "a learning rate (a finite number > 0)", value)
    return float(value)


def _optional_lr(value: object, path: str) -> float | None:
    return None if value is None else _lr(value, path)


def _boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(path, "true or false", value)
    return value


@dataclass(frozen=True)
class Fields:
    """A JSON object read field by field: each accessor checks the field's kind and, when it
    is missing or wrong, names it by its path from the top of the file."""

    document: Mapping[str, Any]
    where: str = ""

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def field(self, key: str, default: Any = _REQUIRED) -> tuple[Any, str]:
        """The field's value (``default`` where it is absent) and its path."""
        if key not in self.document and default is _REQUIRED:
            raise FieldError(self.path(key), "is missing")
        return self.document.get(key, default), self.path(key)

    def each(self, key: str, default: Any = _REQUIRED) -> list[tuple[Any, str]]:
        """A list field's items, each with its path (``rounds[2]``)."""
        value, path = self.field(key, default)
        if not isinstance(value, list):
            raise _wrong(path, "a list", value)
        return [(item, f"{path}[{i}]") for i, item in enumerate(value)]

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        return _text(*self.field(key, default))

    def integer(self, key: str, default: Any = _REQUIRED, *, least: int | None = None) -> int:
        return _integer(*self.field(key, default), least)

    def number(self, key: str, default: Any = _REQUIRED, *, null: float | None = None) -> float:
        return _number(*self.field(key, default), null)

    def optional_number(self, key: str) -> float | None:
        return _optional_number(*self.field(key, None))

    def lr(self, key: str) -> float:
        return _lr(*self.field(key))

    def optional_lr(self, key: str) -> float | None:
        return _optional_lr(*self.field(key, None))

    def optional_integer(self, key: str, *, least: int | None = None) -> int | None:
        value, path = self.field(key, None)
        return None if value is None else _integer(value, path, least)

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        return _boolean(*self.field(key, default))

    def nested(self, key: str) -> Fields:
        """An object field, read as :class:`Fields` in turn."""
        return _object(*self.field(key))

    def objects(self, key: str, default: Any = _REQUIRED) -> list[Fields]:
        return [_object(item, path) for item, path in self.each(key, default)]

    def suggestions(self, key: str) -> dict[str, float | None]:
        """Rule name -> suggested learning rate (null where the rule found none)."""
        rules = self.nested(key)
        return {str(name): rules.optional_lr(name) for name in rules.document}


def _object(value: object, path: str) -> Fields:
    if not isinstance(value, Mapping):
        raise _wrong(path, "an object", value)
    return Fields(value, path)


def read_json(path: Path, option: str) -> Fields:
    """The JSON object in ``path``, given as ``option``; a file that cannot be read, is not
    JSON or holds no object is refused naming both."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LrkitValueError(f"{option} {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(document, dict):
        raise LrkitValueError(
            f"{option} {path}: not a file written by lrkit {option[2:]} --json "
            f"(it holds {_kind(document)}, not an object)"
        )
    return Fields(document)


def load_range_test(path: Path) -> RangeTestResult:
    """The range test in ``path``, given as ``--find``: a file written by ``lrkit find --json``."""
    return _load(path, "--find", range_test_from_json)


def load_noise_run(path: Path) -> NoiseRun:
    """The noise-scale run in ``path``, given as ``--noise``: a file written by
    ``lrkit noise --json``."""
    return _load(path, "--noise", noise_from_json)


Result = TypeVar("Result")


def _load(path: Path, option: str, parse: Callable[[Fields], Result]) -> Result:
    fields = read_json(path, option)
    try:
        return parse(fields)
    except FieldError as exc:
        raise LrkitValueError(
            f"{option} {path}: not a file written by lrkit {option[2:]} --json ({exc})"
        ) from None


def _record(fields: Fields, *, with_points: bool = True) -> RoundRecord:
    points = tuple(
        Point(
            p.integer("iteration"),
            p.lr("lr"),
            p.number("loss", null=math.nan),
            p.number("smoothed_loss", null=math.nan),
        )
        for p in (fields.objects("points", []) if with_points else [])
    )
    per_lr: dict[float, int] = {}
    for p in points:
        per_lr[p.lr] = per_lr.get(p.lr, 0) + 1
    holds = tuple(
        Hold(
            h.lr("lr"),
            h.number("mean_loss", null=math.nan),
            h.optional_number("eval_loss"),
            per_lr.get(h.lr("lr"), 1),
            h.boolean("complete", True),
        )
        for h in fields.objects("holds", [])
    )
    return RoundRecord(
        program=fields.text("program", ""),
        points=points,
        holds=holds,
        diverged_at=fields.optional_lr("diverged_at"),
        stop_reason=fields.text("stop_reason", ""),
        focus=fields.optional_lr("focus"),
    )


def _round(r: Fields, index: int) -> RoundResult:
    lrs = tuple(_lr(v, path) for v, path in r.each("curve_lrs"))
    losses = tuple(_number(v, path, math.inf) for v, path in r.each("curve_losses"))
    if len(losses) != len(lrs):
        raise FieldError(r.path("curve_losses"), f"has {len(losses)} values for {len(lrs)} lrs")
    suggestions = r.suggestions("suggestions")
    if index > 0 and "turning_point" not in suggestions:  # a narrowed round is read by it
        raise FieldError(r.path("suggestions.turning_point"), "is missing")
    # A repeat's entry holds its holds and where it stopped; the rest is its round's.
    repeats = tuple(
        _record(Fields({**r.document, **extra.document}, extra.where), with_points=False)
        for extra in r.objects("repeats", [])
    )
    return RoundResult(
        record=_record(r),
        curve=r.text("curve"),
        curve_lrs=lrs,
        curve_losses=losses,
        suggestions=suggestions,
        turning_point=find_turning_point(lrs, losses),
        repeats=repeats,
    )


def range_test_from_json(fields: Fields) -> RangeTestResult:
    """The ``RangeTestResult`` whose ``to_json`` gave ``fields``' document."""
    rounds = tuple(_round(r, i) for i, r in enumerate(fields.objects("rounds")))
    if not rounds:
        raise FieldError("rounds", "is empty")
    return RangeTestResult(
        model=fields.text("model"),
        data=fields.text("data"),
        batch_size=fields.integer("batch_size", least=1),
        device=fields.text("device", ""),
        rounds=rounds,
        suggestions=fields.suggestions("suggestions"),
        method=fields.text("method"),
        suggested_lr=fields.optional_lr("suggested_lr"),
        seconds=fields.number("seconds", 0.0),
        repeats=fields.integer("repeats", 1, least=1),
        engine=fields.text("engine", SEQUENTIAL),
        engine_reason=_optional_text(*fields.field("engine_reason", None)),
        suggested_lr_by_repeat=tuple(
            _optional_lr(v, path) for v, path in fields.each("suggested_lr_by_repeat", [])
        ),
        world_size=fields.integer("world_size", 1, least=1),
    )


def _optional_text(value: object, path: str) -> str | None:
    return None if value is None else _text(value, path)


def _noise_point(p: Fields) -> NoisePoint:
    return NoisePoint(
        p.integer("iteration"),
        p.number("epoch"),
        p.number("b_simple", null=math.inf),
        p.number("b_simple_stderr", null=math.nan),
        p.number("b_simple_smoothed", None, null=math.inf),
        p.number("grad_norm_sq", null=math.nan),
        p.number("trace_sigma", null=math.nan),
        p.number("train_loss", None, null=math.nan),
        p.number("val_loss", None, null=math.nan),
        p.number("val_accuracy", math.nan, null=math.nan),
    )


def noise_from_json(fields: Fields) -> NoiseRun:
    """The ``NoiseRun`` whose ``to_json`` gave ``fields``' document."""
    return NoiseRun(
        model=fields.text("model"),
        data=fields.text("data", ""),
        batch_size=fields.integer("batch_size", least=1),
        lr=fields.number("lr", None, null=math.nan),
        estimator=fields.text("estimator", ""),
        examples_per_measurement=fields.integer("examples_per_measurement", 0),
        points=tuple(_noise_point(p) for p in fields.objects("points")),
        status=fields.text("status", "done"),
        seconds=fields.number("seconds", 0.0),
        world_size=fields.integer("world_size", 1, least=1),
        diverged_at=fields.optional_integer("diverged_at", least=1),
    )
