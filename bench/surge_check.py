"""Adam's best lr against the batch size: does the surge rule (Li et al. 2024; ``lrkit scale
--rule surge``) predict a sweep's measured eta*(B) better than the linear and square-root
rules? Chosen before the rule was tried on anything: the textbook's MNIST network with Adam,
a geometric lr grid (2 points an octave, 1e-4 to 0.16) at batch sizes 16 to 1024, 2 epochs,
one seed; every rule anchored at batch 16 and compared by ``lrkit scale --compare`` (the rms
log2 error over the other batch sizes), the noise and surge rules with B_noise fitted to the
sweep and with B_noise measured by ``lrkit noise`` (its default SGD run at batch 16, 2 epochs).

Usage: python bench/surge_check.py [--data-dir DIR] [--epochs 2]
Writes bench/results/surge_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import machine

RESULTS = Path(__file__).parent / "results"
LRKIT = [sys.executable, "-m", "lrkit"]
LRS = ",".join(f"{1e-4 * 2 ** (i / 2):.3g}" for i in range(22))  # 1e-4 .. 0.145
BATCH_SIZES = "16,64,256,1024"
RULES = ("linear", "sqrt", "fit", "noise", "surge")


def lrkit(*args: str, cwd: Path) -> str:
    """Run ``lrkit`` with ``args`` in ``cwd``; its standard output."""
    done = subprocess.run(
        [*LRKIT, *args], cwd=cwd, capture_output=True, text=True, check=False, env=os.environ
    )
    if done.returncode != 0:
        raise SystemExit(f"lrkit {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "surge_check.json")
    args = parser.parse_args()
    data = ["--data-dir", str(args.data_dir.resolve())] if args.data_dir else []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        epochs = f"{args.epochs:g}"
        lrkit(
            "sweep", *data, "--optimizer", "adam", "--lr", LRS, "--batch-size", BATCH_SIZES,
            "--epochs", epochs, "--store", "adam.sqlite", cwd=work,
        )  # fmt: skip
        lrkit("noise", *data, "--epochs", epochs, "--json", "noise.json", cwd=work)
        noise = json.loads((work / "noise.json").read_text())["critical_batch_size"]
        lrkit("scale", "--compare", "--store", "adam.sqlite", "--json", "fitted.json", cwd=work)
        lrkit(
            "scale", "--compare", "--store", "adam.sqlite", "--noise-json", "noise.json",
            "--json", "measured.json", cwd=work,
        )  # fmt: skip
        fitted = json.loads((work / "fitted.json").read_text())
        measured = json.loads((work / "measured.json").read_text())
    print(f"Adam's best lr by batch size ({epochs} epochs), B_noise measured: {noise:.3g}")
    print(f"{'batch':>6} {'best lr':>9} " + " ".join(f"{r:>8}" for r in RULES))
    for size, lr in fitted["measured"].items():
        row = " ".join(f"{fitted['predictions'][r][size]:8.3g}" for r in RULES)
        print(f"{size:>6} {lr:9.3g} {row}")
    for label, found in (("B_noise fitted", fitted), ("B_noise measured", measured)):
        errors = " ".join(f"{found['rms_log2_error'][r]:8.2f}" for r in RULES)
        print(f"{'rms log2 error, ' + label:>16} {errors}")
    result = {
        "machine": machine(),
        "epochs": args.epochs,
        "lrs": LRS,
        "batch_sizes": BATCH_SIZES,
        "noise_scale_measured": noise,
        "fitted": fitted,
        "measured": measured,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
