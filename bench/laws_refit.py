"""The recorded ``bench_laws`` ladders fitted again with the current ``lrkit.laws``: how a
change to the fit (not to the training) moves the intervals and the verdicts, with no run
trained again.

Each recorded family (``bench/results/bench_laws*.json``) holds every width's lr grid and
final losses (and the repeats' losses); its optima are read again (``laws.ladder
.point_optimum``, which gives each its grid spacing), the law fitted on all five widths and
width 512 predicted from the four below (``check_largest``), as ``bench_laws.py`` does. The
table sets the recorded interval beside the new one, and the verdicts: the prediction within
sqrt 2 of the measured optimum or its interval wider than 2 (said), the transfer verdict,
and whether the measured optimum falls where the check says a measurement should.

Usage: python bench/laws_refit.py   (writes bench/results/laws_refit.json)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench_laws import FAMILIES
from lrkit.laws import check_largest, fit_law
from lrkit.laws.fit import Group
from lrkit.laws.ladder import point_optimum
from machine import machine

RESULTS = Path(__file__).parent / "results"
RECORDED = (
    "bench_laws.json",
    "bench_laws_repeats3.json",
    "bench_laws_heldout.json",
    "bench_laws_heldout_repeats3.json",
)
STEP = math.sqrt(2)


def repeats_of(rung: dict[str, Any]) -> list[tuple[float, list[float]]]:
    """(lr, each repeat's final loss) of a recorded rung; inf where a run did not finish."""
    rows = rung.get("repeats") or [[lr, [loss]] for lr, loss in rung["runs"]]
    return [(lr, [math.inf if x is None else x for x in losses]) for lr, losses in rows]


def verdicts(held: dict[str, Any], law: dict[str, Any], expected: str) -> dict[str, bool]:
    """``bench_laws``'s verdicts of a check and a law, as JSON: the prediction within sqrt 2
    or said wide, the exponent's interval as the family's parametrization expects, and the
    measured optimum where the check says a measurement should fall."""
    predicted, measured = held["prediction"]["value"], held["measured"]["lr"]
    low, high = held["prediction"]["interval"]
    close = abs(math.log(predicted / measured)) <= math.log(STEP) + 1e-9
    ((e_low, e_high),) = law["exponent_intervals"]
    m_low, m_high = held["prediction"]["measured_interval"]
    return {
        "prediction_ok": close or high / low > 2,
        "transfer_ok": e_high < 0 if expected == "falls" else e_low <= 0 <= e_high,
        "within": m_low <= measured <= m_high,
    }


def refit(family: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recorded family's check and law, fitted again: (held-out check, law) as JSON."""
    groups: dict[tuple[float, ...], Group] = {}
    for rung in family["rungs"]:
        optimum = point_optimum(repeats_of(rung))
        recorded = rung["optimum"]["lr"]
        if not math.isclose(optimum.lr, recorded, rel_tol=1e-9):
            width = rung["width"]
            raise SystemExit(f"width {width}: optimum {optimum.lr} read, {recorded} recorded")
        groups[(float(rung["width"]),)] = optimum
    law = fit_law(groups, ["width"])
    found = law.to_json() | {
        "reading_variance": law.reading_variance,
        "residual_variance": law.residual_variance,
    }
    return check_largest(groups, ["width"]).to_json(), found


def shown(ok: bool) -> str:
    return "ok" if ok else "MISS"


def interval(pair: list[float]) -> str:
    return f"{pair[0]:.4g} .. {pair[1]:.4g} ({pair[1] / pair[0]:.2f}x)"


def main() -> None:
    summary: dict[str, Any] = {"benchmark": "laws_refit", "machine": machine(), "files": {}}
    header = (
        f"{'file, family':<44} {'512: interval then':>28} {'now':>28} "
        f"{'within':>11} {'exponent interval then':>24} {'now':>18}  verdicts then / now"
    )
    print(header)
    for name in RECORDED:
        path = RESULTS / name
        if not path.exists():
            continue
        recorded = json.loads(path.read_text())
        summary["files"][name] = {}
        for family, found in recorded["families"].items():
            expected = FAMILIES[family][2]
            held, law = refit(found)
            then = verdicts(found["held_out"], found["law"], expected)
            now = verdicts(held, law, expected)
            summary["files"][name][family] = {
                "held_out": held,
                "law": law,
                "verdicts_then": then,
                "verdicts_now": now,
            }
            ((lo0, hi0),) = found["law"]["exponent_intervals"]
            ((lo1, hi1),) = law["exponent_intervals"]
            print(
                f"{name + ', ' + family:<44} "
                f"{interval(found['held_out']['prediction']['interval']):>28} "
                f"{interval(held['prediction']['interval']):>28} "
                f"{shown(then['within']) + '/' + shown(now['within']):>11} "
                f"{f'{lo0:.3g} .. {hi0:.3g}':>24} {f'{lo1:.3g} .. {hi1:.3g}':>18} "
                f"{shown(then['prediction_ok']) + ',' + shown(then['transfer_ok']) + ' / '}"
                f"{shown(now['prediction_ok']) + ',' + shown(now['transfer_ok'])}"
            )
    out = RESULTS / "laws_refit.json"
    out.write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
