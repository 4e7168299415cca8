"""A width ladder run into a sweep store: at every width, a sweep of one batch size over a
learning-rate grid, the rung's optimum read from its band of near-best runs.

The grid is geometric around ``center_lr`` (the range test's suggestion at the smallest
width, for ``lrkit laws``): ``per_octave`` points an octave for ``octaves`` octaves each side,

    lr_k = center_lr * 2 ** (k / per_octave),   k = -octaves * per_octave .. octaves * per_octave

(Step Law and DeepSeek read optima off grids of about this density). Where a rung's band
touches an end of its grid, the optimum may lie past it: the grid is extended by one octave
on that side and the new points run, up to ``MAX_WIDENINGS`` times. Every rung is its own
named sweep (``{name}-width-{w}``) in one store, so a ladder killed part way resumes with
no finished run repeated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from lrkit import validation as check
from lrkit.laws.optimum import STEP_LAW_TOLERANCE, Optimum, band_optimum
from lrkit.sweep.definition import SweepDefinition, product_grid
from lrkit.sweep.runner import SweepEvents, run_sweep
from lrkit.sweep.store import Store, StoredTrial
from lrkit.sweep.trials import SweepPlan
from lrkit.workload import Workload

MAX_WIDENINGS = 2
"""Octaves a rung's grid may grow by, on the side its band touches."""

WidthFactory = Callable[[int], nn.Module]


@dataclass(frozen=True)
class Rung:
    """One width of the ladder: its grid, its runs and its optimum."""

    width: int
    lrs: tuple[float, ...]
    trials: tuple[StoredTrial, ...]
    optimum: Optimum
    widenings: int
    """Octaves added to the grid because the band touched an end."""

    @property
    def runs(self) -> tuple[tuple[float, float], ...]:
        """(lr, final validation loss) of each run; inf where it did not finish."""
        return tuple((t.lr, final_loss(t)) for t in self.trials)

    def to_json(self) -> dict[str, object]:
        return {
            "width": self.width,
            "lrs": list(self.lrs),
            "runs": [[lr, loss if math.isfinite(loss) else None] for lr, loss in self.runs],
            "optimum": self.optimum.to_json(),
            "widenings": self.widenings,
        }


def lr_grid(center_lr: float, octaves: int = 2, per_octave: int = 4) -> tuple[float, ...]:
    """The geometric grid of the module's docstring."""
    center_lr = check.positive_float("center_lr", center_lr)
    octaves = check.positive_int("octaves", octaves)
    per_octave = check.positive_int("per_octave", per_octave)
    half = octaves * per_octave
    return tuple(center_lr * 2 ** (k / per_octave) for k in range(-half, half + 1))


def widen(lrs: Sequence[float], upward: bool, per_octave: int) -> tuple[float, ...]:
    """``lrs`` with one more octave of ``per_octave`` points past its top (or bottom)."""
    edge = max(lrs) if upward else min(lrs)
    step = 2 ** (1 / per_octave) if upward else 2 ** (-1 / per_octave)
    return tuple(sorted((*lrs, *(edge * step**k for k in range(1, per_octave + 1)))))


def final_loss(trial: StoredTrial) -> float:
    """The final validation loss of a finished trial; inf for one that diverged or failed."""
    if trial.status != "done" or trial.final_val_loss is None:
        return math.inf
    return trial.final_val_loss


def at_width(factory: WidthFactory, width: int) -> Callable[[int], nn.Module]:
    """``seed -> factory(width)``, the global RNG seeded only inside the call."""

    def make(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory(width)

    return make


def run_ladder(
    factory: WidthFactory,
    widths: Sequence[int],
    work: Workload,
    definition: SweepDefinition,
    store: Store,
    *,
    batch_size: int,
    center_lr: float,
    octaves: int = 2,
    per_octave: int = 4,
    tolerance: float = STEP_LAW_TOLERANCE,
    name: str = "laws",
    device: torch.device | None = None,
    engine: str = "auto",
    workers: int | None = None,
    address: str | None = None,
    events: SweepEvents | None = None,
) -> tuple[Rung, ...]:
    """Run the ladder of the module's docstring: ``factory(width)`` at each of ``widths``
    on ``work``'s data and loss (its own model factory is not used), trained as
    ``definition`` says (its ``model`` names the family: each rung records
    ``{model}@{width}``), into ``store``."""
    widths = tuple(sorted({check.positive_int("widths", w) for w in widths}))
    batch_size = check.positive_int("batch_size", batch_size)
    device = device or torch.device("cpu")
    rungs = []
    for width in widths:
        lrs = lr_grid(center_lr, octaves, per_octave)
        rung_work = replace(work, make_model=at_width(factory, width))
        rung_definition = replace(definition, model=f"{definition.model}@{width}")
        widenings = 0
        while True:
            plan = SweepPlan(
                f"{name}-width-{width}", rung_definition, product_grid(lrs, [batch_size], 1)
            )
            trials = run_sweep(store, plan, rung_work, device, events, engine, workers, address)
            optimum = band_optimum([(t.lr, final_loss(t)) for t in trials], tolerance)
            if not optimum.at_edge or widenings == MAX_WIDENINGS:
                break
            lrs = widen(lrs, optimum.high == max(lrs), per_octave)
            widenings += 1
        rungs.append(
            Rung(width, lrs, tuple(sorted(trials, key=lambda t: t.lr)), optimum, widenings)
        )
    return tuple(rungs)
