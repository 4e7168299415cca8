"""Results read back from the JSON that ``lrkit find --json`` and ``lrkit noise --json``
write, as the objects their figures are drawn from."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lrkit.errors import LrkitValueError
from lrkit.noise.tracking import NoisePoint, NoiseRun
from lrkit.rangetest.core import Hold, Point, RoundRecord
from lrkit.rangetest.result import RangeTestResult, RoundResult
from lrkit.rangetest.suggestions import find_turning_point


def read_json(path: Path, option: str, required: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LrkitValueError(f"{option} {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(document, dict) or required not in document:
        raise LrkitValueError(f"{option} {path}: not a file written by {option[2:]} --json")
    return document


def _number(value: Any, missing: float = math.nan) -> float:
    return missing if value is None else float(value)


def _record(document: dict[str, Any]) -> RoundRecord:
    points = tuple(
        Point(int(p["iteration"]), float(p["lr"]), _number(p["loss"]), _number(p["smoothed_loss"]))
        for p in document.get("points", [])
    )
    per_lr: dict[float, int] = {}
    for p in points:
        per_lr[p.lr] = per_lr.get(p.lr, 0) + 1
    holds = tuple(
        Hold(
            float(h["lr"]),
            _number(h["mean_loss"]),
            None if h.get("eval_loss") is None else float(h["eval_loss"]),
            per_lr.get(float(h["lr"]), 1),
            bool(h.get("complete", True)),
        )
        for h in document.get("holds", [])
    )
    return RoundRecord(
        program=str(document.get("program", "")),
        points=points,
        holds=holds,
        diverged_at=document.get("diverged_at"),
        stop_reason=str(document.get("stop_reason", "")),
        focus=document.get("focus"),
    )


def range_test_from_json(document: dict[str, Any]) -> RangeTestResult:
    """The ``RangeTestResult`` whose ``to_json`` gave ``document``."""
    rounds = []
    for r in document["rounds"]:
        lrs = tuple(float(v) for v in r["curve_lrs"])
        losses = tuple(_number(v, math.inf) for v in r["curve_losses"])
        repeats = tuple(_record({**r, **extra, "points": []}) for extra in r.get("repeats", []))
        rounds.append(
            RoundResult(
                record=_record(r),
                curve=str(r["curve"]),
                curve_lrs=lrs,
                curve_losses=losses,
                suggestions=dict(r["suggestions"]),
                turning_point=find_turning_point(lrs, losses),
                repeats=repeats,
            )
        )
    return RangeTestResult(
        model=str(document["model"]),
        data=str(document["data"]),
        batch_size=int(document["batch_size"]),
        device=str(document.get("device", "")),
        rounds=tuple(rounds),
        suggestions=dict(document["suggestions"]),
        method=str(document["method"]),
        suggested_lr=document.get("suggested_lr"),
        seconds=float(document.get("seconds", 0.0)),
        repeats=int(document.get("repeats", 1)),
        engine=str(document.get("engine", "sequential")),
        engine_reason=document.get("engine_reason"),
        suggested_lr_by_repeat=tuple(document.get("suggested_lr_by_repeat", ())),
        world_size=int(document.get("world_size", 1)),
    )


def noise_from_json(document: dict[str, Any]) -> NoiseRun:
    """The ``NoiseRun`` whose ``to_json`` gave ``document``."""
    points = tuple(
        NoisePoint(
            int(p["iteration"]),
            float(p["epoch"]),
            _number(p["b_simple"], math.inf),
            _number(p["b_simple_stderr"]),
            _number(p.get("b_simple_smoothed"), math.inf),
            _number(p["grad_norm_sq"]),
            _number(p["trace_sigma"]),
            _number(p.get("train_loss")),
            _number(p.get("val_loss")),
        )
        for p in document["points"]
    )
    return NoiseRun(
        model=str(document["model"]),
        data=str(document.get("data", "")),
        batch_size=int(document["batch_size"]),
        lr=float(document.get("lr", math.nan)),
        estimator=str(document.get("estimator", "")),
        examples_per_measurement=int(document.get("examples_per_measurement", 0)),
        points=points,
        status=str(document.get("status", "done")),
        seconds=float(document.get("seconds", 0.0)),
        world_size=int(document.get("world_size", 1)),
    )
