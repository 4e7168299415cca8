"""The figure of ``lrkit advise`` choosing the batch size: left, the model's predicted wall
time to a given loss against batch size (McCandlish et al. 2018, ``batchsize.model``) with the
measured step time, the raced sizes marked and, for a target, the measured times to it;
right, each race's validation curve (its winner's, or for a target the lr that reached it
first, or was projected to) against training time; projected times are open circles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lrkit.batchsize.result import BatchAdvice
from lrkit.plots.figure import pyplot, save


def plot_batch_advice(found: BatchAdvice, path: Path) -> None:
    """Draw ``found`` and save the figure to ``path`` (PNG, SVG or PDF)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.8, 4.6))
    _draw_model(left, found)
    _draw_races(right, found)
    fig.suptitle(
        f"lrkit advise: {found.model}; advised batch size {found.batch_size}, lr {found.lr:.3g}",
        fontsize="medium",
    )
    fig.tight_layout()
    save(fig, path)


def _draw_model(left: Any, found: BatchAdvice) -> None:
    """Left: the model's predicted time against batch size (to the target where a race
    reached it, else relative to the best), the measured step time on a second axis, the
    raced sizes, the advised one and B_noise."""
    fitting = [p for p in found.predictions if p.fits]
    sizes = [p.batch_size for p in fitting]
    if found.predicted_seconds:
        _draw_times_to_target(left, found)
    else:
        left.plot(
            sizes,
            [p.relative_time for p in fitting],
            marker="o",
            color="#1f77b4",
            label="predicted time to a given loss, against the best",
        )
        left.set_ylabel("t(B) (1 + B_noise / B), relative")
    twin = left.twinx()
    twin.plot(
        sizes,
        [p.step_seconds * 1e3 for p in fitting],
        color="#ff7f0e",
        linestyle=":",
        marker=".",
        label="measured step time",
    )
    twin.set_ylabel("ms per step", color="#ff7f0e")
    for race in found.races:
        left.axvline(race.batch_size, color="grey", linewidth=0.8, alpha=0.6)
    left.axvline(
        found.batch_size, color="black", linewidth=2.0, label=f"advised {found.batch_size}"
    )
    left.axvline(
        found.noise.b_noise,
        color="#2ca02c",
        linestyle="--",
        linewidth=1.2,
        label=f"B_noise {found.noise.b_noise:.3g}",
    )
    left.set_xscale("log", base=2)
    left.set_xlabel("batch size")
    left.legend(fontsize="x-small", loc="upper center")
    left.set_title(
        "the model: steps S_min (1 + B_noise / B) at the measured step time", fontsize="medium"
    )


def _draw_times_to_target(left: Any, found: BatchAdvice) -> None:
    """The model's seconds to the target at each size, and the races' own: measured (filled)
    or projected (open)."""
    left.plot(
        [b for b, _ in found.predicted_seconds],
        [s for _, s in found.predicted_seconds],
        marker="o",
        color="#1f77b4",
        label="predicted time to the target",
    )
    for projected, label in ((False, "measured in the race"), (True, "projected (untested)")):
        points = [
            r for r in found.races if r.seconds_to_target is not None and r.projected is projected
        ]
        if points:
            left.scatter(
                [r.batch_size for r in points],
                [r.seconds_to_target for r in points],
                facecolors="none" if projected else "black",
                edgecolors="black",
                zorder=3,
                label=label,
            )
    left.set_ylabel("seconds of training to the target")


def _draw_races(right: Any, found: BatchAdvice) -> None:
    """Right: each race's curve (its winner's, or the lr that reached the target first)
    against seconds of training at the measured step time; the target, if any."""
    step = {p.batch_size: p.step_seconds for p in found.predictions}
    for race in found.races:
        advice = race.advice
        winner = next(c for c in advice.candidates if c.lr == race.curve_lr)
        seconds = [e * race.steps_per_epoch * step[race.batch_size] for e, _ in winner.curve]
        right.plot(
            seconds,
            [v for _, v in winner.curve],
            marker="o",
            markersize=2.5,
            linewidth=2.4 if race.batch_size == found.batch_size else 1.1,
            label=f"batch {race.batch_size}, lr {race.curve_lr:.3g}",
        )
    if found.target is not None:
        right.axhline(found.target, color="black", linestyle="--", linewidth=1.0, label="target")
    right.set_xlabel("seconds of training (measured step time)")
    right.set_ylabel(f"validation {found.metric}")
    right.set_title("each race's winner", fontsize="medium")
    right.legend(fontsize="x-small", loc="best")
