"""A ladder of small runs into a sweep store: at every point (a model size, a horizon, a batch
size), a sweep over a learning-rate grid, the point's optimum read from its band of near-best
runs.

The points are the product of the ladder's axes: sizes (the family's width or depth, the
factory's one argument), horizons (epochs, and the number of training examples: the first
``n`` of the training set, so that smaller sets nest in larger ones) and batch sizes.

The grid is geometric around ``center_lr`` (the range test's suggestion at the smallest size,
for ``lrkit laws``): ``per_octave`` points an octave for ``octaves`` octaves each side,

    lr_k = center_lr * 2 ** (k / per_octave),   k = -octaves * per_octave .. octaves * per_octave

(Step Law and DeepSeek read optima off grids of about this density). Where a point's band
touches an end of its grid, the optimum may lie past it: the grid is extended by one octave
on that side and the new points run, up to ``MAX_WIDENINGS`` times. Each point is its own
named sweep (``{name}-width-{w}``, with ``-epochs-{e}``, ``-examples-{n}``, ``-batch-{b}``
for the axes that vary) in one store, so a ladder killed part way resumes with no finished run
repeated. With ``repeats`` seeds at each lr, a point's loss at an lr is the repeats' mean and
its band is widened to their noise (``optimum.repeat_tolerance``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from lrkit import validation as check
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.laws.branching import run_branched
from lrkit.laws.optimum import STEP_LAW_TOLERANCE, Optimum, band_optimum, repeat_tolerance
from lrkit.laws.points import Ladder, Point
from lrkit.sweep.definition import SweepDefinition, product_grid
from lrkit.sweep.engines.registry import EngineRequest
from lrkit.sweep.runner import SweepEvents, run_sweep
from lrkit.sweep.store import Store, StoredTrial
from lrkit.sweep.trials import SweepPlan
from lrkit.workload import Workload

MAX_WIDENINGS = 2
"""Octaves a point's grid may grow by, on the side its band touches."""
MAX_OCTAVES = 10
"""Octaves of the grid each side of its centre at most: a factor of 1024 either way, past any
doubt a range test leaves about the optimum."""
MAX_PER_OCTAVE = 16
"""Grid points an octave at most (Step Law's and DeepSeek's grids hold about 4): a point's grid
holds at most 2 x 10 x 16 + 1 = 321 lrs, and 32 more where it widens."""

SizeFactory = Callable[[int], nn.Module]


@dataclass(frozen=True)
class Rung:
    """One point of the ladder: its grid, its runs and its optimum."""

    point: Point
    parameters: int
    """N: the model's parameter count at this size."""
    lrs: tuple[float, ...]
    trials: tuple[StoredTrial, ...]
    optimum: Optimum
    widenings: int
    """Octaves added to the grid because the band touched an end."""
    axis: str = "width"

    @property
    def size(self) -> int:
        return self.point.size

    @property
    def repeats(self) -> tuple[tuple[float, tuple[float, ...]], ...]:
        """(lr, the final validation loss of each repeat) for every lr; inf where a repeat
        did not finish."""
        return tuple((lr, tuple(losses)) for lr, losses in by_lr(self.trials))

    @property
    def runs(self) -> tuple[tuple[float, float], ...]:
        """(lr, mean final validation loss over the repeats) of each lr; inf where one did
        not finish."""
        return tuple((lr, sum(losses) / len(losses)) for lr, losses in self.repeats)

    def to_json(self) -> dict[str, object]:
        found: dict[str, object] = {
            self.axis: self.point.size,
            "examples": self.point.examples,
            "epochs": self.point.epochs,
            "batch_size": self.point.batch_size,
            "parameters": self.parameters,
            "lrs": list(self.lrs),
            "runs": [[lr, loss if math.isfinite(loss) else None] for lr, loss in self.runs],
            "optimum": self.optimum.to_json(),
            "widenings": self.widenings,
        }
        if any(len(losses) > 1 for _, losses in self.repeats):
            found["repeats"] = [
                [lr, [x if math.isfinite(x) else None for x in losses]]
                for lr, losses in self.repeats
            ]
        return found


def lr_grid(center_lr: float, octaves: int = 2, per_octave: int = 4) -> tuple[float, ...]:
    """The geometric grid of the module's docstring."""
    center_lr = check.positive_float("center_lr", center_lr)
    octaves, per_octave = check_grid(octaves, per_octave)
    half = octaves * per_octave
    return tuple(center_lr * 2 ** (k / per_octave) for k in range(-half, half + 1))


def check_grid(octaves: int, per_octave: int) -> tuple[int, int]:
    """``octaves`` in [1, ``MAX_OCTAVES``] and ``per_octave`` in [1, ``MAX_PER_OCTAVE``]."""
    return (
        check.int_in("octaves", octaves, 1, MAX_OCTAVES, "each side of the centre"),
        check.int_in("per_octave", per_octave, 1, MAX_PER_OCTAVE, "points an octave"),
    )


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


def point_optimum(
    repeats: Sequence[tuple[float, Sequence[float]]], tolerance: float = STEP_LAW_TOLERANCE
) -> Optimum:
    """The band optimum of the repeats' mean losses, the band widened to their noise."""
    means = [(lr, sum(losses) / len(losses)) for lr, losses in repeats]
    return band_optimum(means, repeat_tolerance(repeats, tolerance))


def at_size(factory: SizeFactory, size: int) -> Callable[[int], nn.Module]:
    """``seed -> factory(size)``, the global RNG seeded only inside the call."""

    def make(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory(size)

    return make


def parameter_count(model: nn.Module) -> int:
    """N: the model's trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def point_definition(definition: SweepDefinition, ladder: Ladder, point: Point) -> SweepDefinition:
    """How the point's runs train: the family at the point's size, its epochs, its data."""
    model = (
        f"{definition.model}@{point.size}"
        if ladder.axis == "width"
        else (f"{definition.model}@depth={point.size}")
    )
    data = definition.data
    if "examples" in ladder.varies:
        data = f"{data}[:{point.examples}]"
    return replace(definition, model=model, data=data, epochs=point.epochs)


@dataclass(frozen=True)
class LadderPlan:
    """What a ladder runs: its points, how their runs train, each point's lr grid (the module's
    docstring) and the names of its sweeps."""

    ladder: Ladder
    definition: SweepDefinition
    """How every run trains; its ``model`` names the family (each point records
    ``{model}@{size}``), its ``epochs`` are each point's own (``point_definition``)."""
    center_lr: float
    octaves: int = 2
    per_octave: int = 4
    repeats: int = 1
    """Seeds at each lr: a point's loss there is their mean, its band widened to their noise."""
    tolerance: float = STEP_LAW_TOLERANCE
    """The band's relative width over the best loss (Step Law's 0.25%)."""
    name: str = "laws"
    """Prefix of the points' sweep names."""
    branch: bool = False
    """Train the horizons of one size, examples and batch size branched off one run per lr
    (``laws.branching``, on the sequential engine) instead of each its own sweep."""

    def __post_init__(self) -> None:
        check.positive_int("repeats", self.repeats)


HorizonTrainer = Callable[[Sequence[SweepPlan], Workload], list[list[StoredTrial]]]
"""Trains the sweeps of one family's horizons on a workload; returns each sweep's trials."""


def run_ladder(
    factory: SizeFactory,
    work: Workload,
    store: Store,
    plan: LadderPlan,
    *,
    device: torch.device | None = None,
    engine: EngineRequest | None = None,
    events: SweepEvents | None = None,
) -> tuple[Rung, ...]:
    """Run the ladder of the module's docstring as ``plan`` says: ``factory(size)`` at each
    point on ``work``'s data and loss (its own model factory is not used), into ``store``, on
    ``device`` (default the CPU). The horizons of one size, examples and batch size share
    their grid (widened together); each is its own sweep on ``engine`` (default: auto), or,
    with ``plan.branch``, they branch off one run per lr (``laws.branching.run_branched``)."""
    target = device or torch.device("cpu")
    train = work.train
    if not isinstance(train, TensorData):
        raise LrkitValueError("--data: a ladder needs tensor data (TensorData or (x, y))")
    largest = max(plan.ladder.examples)
    if largest > len(train):
        raise LrkitValueError(
            f"--examples: at most the training examples ({len(train)}); got {largest}"
        )

    def horizons(plans: Sequence[SweepPlan], work: Workload) -> list[list[StoredTrial]]:
        if plan.branch:
            return run_branched(store, plans, work, target, events)
        return [run_sweep(store, p, work, target, events, engine) for p in plans]

    rungs: list[Rung] = []
    counts: dict[int, int] = {}
    for family in _families(plan.ladder):
        first = family[0]
        make_model = at_size(factory, first.size)
        if first.size not in counts:
            counts[first.size] = parameter_count(make_model(plan.definition.seed))
        point_work = replace(work, make_model=make_model, train=train.head(first.examples))
        rungs.extend(_family_rungs(plan, family, counts[first.size], point_work, horizons))
    return tuple(sorted(rungs, key=lambda r: r.point))


def _families(ladder: Ladder) -> list[list[Point]]:
    """The ladder's points by (size, examples, batch size), each family's horizons together,
    in the order of their shortest horizon's point."""
    points = ladder.points()
    return [
        [p for p in points if (p.size, p.examples, p.batch_size) == key]
        for key in dict.fromkeys(
            (p.size, p.examples, p.batch_size) for p in points if p.epochs == min(ladder.epochs)
        )
    ]


def _family_rungs(
    plan: LadderPlan,
    family: Sequence[Point],
    parameters: int,
    work: Workload,
    horizons: HorizonTrainer,
) -> list[Rung]:
    """The rungs of one family (its points differ only in their horizon) on ``work``: the
    grid around ``plan.center_lr``, grown by an octave on the side the bands touch (the side
    more of them touch, upward on a tie) up to ``MAX_WIDENINGS`` times."""
    lrs = lr_grid(plan.center_lr, plan.octaves, plan.per_octave)
    widenings = 0
    while True:
        grid = product_grid(lrs, [family[0].batch_size], plan.repeats)
        sweeps = [
            SweepPlan(
                plan.ladder.sweep_name(plan.name, p),
                point_definition(plan.definition, plan.ladder, p),
                grid,
            )
            for p in family
        ]
        found = horizons(sweeps, work)
        made = [
            (p, tuple(sorted(trials, key=lambda t: (t.lr, t.repeat))))
            for p, trials in zip(family, found, strict=True)
        ]
        optima = [point_optimum(by_lr(trials), plan.tolerance) for _, trials in made]
        edges = [o for o in optima if o.at_edge]
        if not edges or widenings == MAX_WIDENINGS:
            break
        upward = sum(o.high == max(lrs) for o in edges) >= sum(o.low == min(lrs) for o in edges)
        lrs = widen(lrs, upward, plan.per_octave)
        widenings += 1
    return [
        Rung(p, parameters, lrs, trials, optimum, widenings, plan.ladder.axis)
        for (p, trials), optimum in zip(made, optima, strict=True)
    ]


def by_lr(trials: Sequence[StoredTrial]) -> list[tuple[float, list[float]]]:
    """(lr, its repeats' final losses) of ``trials``."""
    grouped: dict[float, list[float]] = {}
    for t in trials:
        grouped.setdefault(t.lr, []).append(final_loss(t))
    return sorted(grouped.items())
