"""Does ``lrkit laws`` predict the best learning rate of a larger width, and tell a
parametrization that transfers from one that does not?

Problems (chosen before this benchmark first ran; ``laws_models.py``): the MNIST MLP
784-w-w-10 with Adam in the standard parametrization (``sp-adam``) and in muP's
(``mup-adam``), widths 32, 64, 128, 256 and 512; batch 128, 2 epochs, the full MNIST set from
``--data-dir``. For each, the ladder runs as ``lrkit laws`` does (the grid centred on the
range test at width 32, 4 points an octave, 2 octaves each side, grown where a band touches
an end), width 512 is predicted from the four below it (``check_largest``), and the law's
exponent is fitted on all five.

Verdicts: the prediction within a factor of sqrt 2 (one grid step of a x sqrt 2 grid) of the
measured optimum at 512, or the prediction's interval wider than a factor of 2 (the tool
says it cannot place it); the transfer: sp-adam's exponent interval below 0 (the best lr
falls with width), mup-adam's holding 0; the coordinate check: sp-adam not flat, mup-adam
flat.

With ``--repeats R`` every lr trains R seeds, a width's loss at an lr is their mean and its
band is widened to their noise (``laws.optimum.repeat_tolerance``); the stores are shared, so
the first seed's runs are not trained again.

Held-out families (chosen after the first two had been run and the band tuned on them; see
``laws_models.py``): ``sp-deep-adam`` and ``mup-deep-adam``, three hidden layers, the same
verdicts; run with ``--families sp-deep-adam,mup-deep-adam --out ...`` and reported apart.

Usage: python bench/bench_laws.py [--data-dir DIR] [--families sp-adam,mup-adam] [--repeats R]
Writes bench/results/bench_laws.json (bench_laws_repeatsR.json with repeats; stores in
bench/results/laws/, not committed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from laws_models import mup_deep_mlp, mup_mlp, sp_deep_mlp, sp_mlp
from lrkit.advise.settings import AdviseSettings
from lrkit.laws import check_largest, fit_law
from lrkit.laws.driver import range_test_center
from lrkit.laws.fit import Group
from lrkit.laws.ladder import LadderPlan, run_ladder
from lrkit.laws.points import Ladder
from lrkit.laws.transfer import coordinate_check
from lrkit.sweep.definition import SweepDefinition
from lrkit.sweep.engines.registry import EngineRequest
from lrkit.sweep.store import Store
from lrkit.training.optimizers import make_optimizer
from lrkit.workload import load_workload
from machine import machine

RESULTS = Path(__file__).parent / "results"
# name: (factory spec, factory, what the best lr should do with width, held out)
FAMILIES: dict[str, tuple[str, Callable[[int], torch.nn.Module], str, bool]] = {
    "sp-adam": ("laws_models:sp_mlp", sp_mlp, "falls", False),
    "mup-adam": ("laws_models:mup_mlp", mup_mlp, "flat", False),
    "sp-deep-adam": ("laws_models:sp_deep_mlp", sp_deep_mlp, "falls", True),
    "mup-deep-adam": ("laws_models:mup_deep_mlp", mup_deep_mlp, "flat", True),
}
FIRST = "sp-adam,mup-adam"
WIDTHS = (32, 64, 128, 256, 512)
BATCH_SIZE = 128
EPOCHS = 2.0
STEP = math.sqrt(2)


def run_family(name: str, data_dir: Path | None, workers: int, repeats: int) -> dict[str, Any]:
    spec, factory, expected, held_out_family = FAMILIES[name]
    work = load_workload(spec, None, data_dir, None, 1 / 12, notify=lambda m: None)
    started = time.perf_counter()
    race = AdviseSettings(epochs=EPOCHS, batch_size=BATCH_SIZE, optimizer="adam", momentum=0.9)
    center = range_test_center(factory, WIDTHS[0], work, race)
    definition = SweepDefinition(
        model=spec,
        data=str(data_dir or "mnist"),
        loss="cross_entropy",
        epochs=EPOCHS,
        eval_every=EPOCHS / 4,
        val_fraction=1 / 12,
        optimizer="adam",
        momentum=0.9,
        weight_decay=0.0,
        schedule=None,
        batch_size_schedule=None,
        seed=0,
    )
    (RESULTS / "laws").mkdir(parents=True, exist_ok=True)
    with Store.open(RESULTS / "laws" / f"{name}.sqlite") as store:
        ladder = Ladder(WIDTHS, (len(work.train),), (EPOCHS,), (BATCH_SIZE,))
        rungs = run_ladder(
            factory,
            work,
            store,
            LadderPlan(ladder, definition, center, repeats=repeats, name=name),
            engine=EngineRequest(workers=workers),
        )
    seconds = time.perf_counter() - started
    groups: dict[tuple[float, ...], Group] = {(float(r.size),): r.optimum for r in rungs}
    held = check_largest(groups, ["width"])
    law = fit_law(groups, ["width"])
    coordinates = coordinate_check(
        factory,
        lambda net: make_optimizer("adam", net, center),
        WIDTHS,
        work.train,
        work.loss_fn,
        batch_size=BATCH_SIZE,
    )
    ratio = held.prediction.value / held.measured.lr
    close = abs(math.log(ratio)) <= math.log(STEP) + 1e-9
    wide = held.prediction.width > 2
    ((low, high),) = law.exponent_intervals
    transfer_ok = high < 0 if expected == "falls" else low <= 0 <= high
    coordinate_ok = (not coordinates.flat) if expected == "falls" else coordinates.flat
    return {
        "expected": expected,
        "held_out_family": held_out_family,
        "center_lr": center,
        "repeats": repeats,
        "runs": sum(len(r.trials) for r in rungs),
        "seconds": seconds,
        "rungs": [r.to_json() for r in rungs],
        "held_out": held.to_json(),
        "ratio": ratio,
        "prediction_ok": close or wide,
        "prediction_close": close,
        "prediction_wide": wide,
        "law": law.to_json(),
        "transfer_ok": transfer_ok,
        "coordinate_check": coordinates.to_json(),
        "coordinate_ok": coordinate_ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--families", default=FIRST, help=f"comma-separated, of {', '.join(FAMILIES)}"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=1, help="seeds at each lr (the band widened to their noise)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or (
        Path(os.environ["LRKIT_DATA_DIR"]) if "LRKIT_DATA_DIR" in os.environ else None
    )
    torch.set_num_threads(1)
    names = args.families.split(",")
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        parser.error(f"--families: unknown {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    summary: dict[str, Any] = {"benchmark": "bench_laws", "machine": machine(), "families": {}}
    for name in names:
        found = run_family(name, data_dir, args.workers, args.repeats)
        summary["families"][name] = found
        print(
            f"\n== {name}{' (held out)' if found['held_out_family'] else ''}: "
            f"{found['runs']} runs, {found['seconds']:.0f} s, "
            f"grid centre {found['center_lr']:.4g}"
        )
        print(f"   {'width':>5} {'best lr':>9} {'band':>21} {'best loss':>9} {'at end':>6}")
        for r in found["rungs"]:
            o = r["optimum"]
            band = f"{o['low']:.4g} .. {o['high']:.4g}"
            edge = "yes" if o["at_edge"] else ""
            print(f"   {r['width']:>5} {o['lr']:>9.4g} {band:>21} {o['best_loss']:>9.4f} {edge:>6}")
        h = found["held_out"]
        p = h["prediction"]
        print(
            f"   512 from 32..256: predicted {p['value']:.4g} (90% {p['interval'][0]:.4g} .. "
            f"{p['interval'][1]:.4g}), measured {h['measured']['lr']:.4g}: "
            f"ratio {found['ratio']:.3g}; "
            f"{'ok' if found['prediction_ok'] else 'MISS'}"
            f"{' (interval wider than 2x, said)' if found['prediction_wide'] else ''}"
        )
        law = found["law"]
        ((lo, hi),) = law["exponent_intervals"]
        print(
            f"   exponent (all five) {law['exponents'][0]:.3g} (90% {lo:.3g} .. {hi:.3g}); "
            f"transfer verdict {'ok' if found['transfer_ok'] else 'MISS'}; coordinate check "
            f"{'flat' if found['coordinate_check']['flat'] else 'not flat'}: "
            f"{'ok' if found['coordinate_ok'] else 'MISS'}"
        )
    out = args.out or RESULTS / (
        "bench_laws.json" if args.repeats == 1 else f"bench_laws_repeats{args.repeats}.json"
    )
    out.write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
