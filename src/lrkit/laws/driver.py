"""``laws`` (the driver): from a ladder of small runs to the laws in their optima.

    the data checked against the ladder -> N at each size (``laws.parameters``), refusing a
    family that ignores its size -> N at the target, counted without building it -> the
    grid's centre (given, or the range test at the smallest point: ``range_test_center``)
    -> the ladder (``laws.ladder``) into the store, the horizons of an epochs ladder
    branched off one run per lr (``laws.branching``) where the engine trains one trial at a
    time -> the laws, their intervals and the forecast (``laws.analysis``) -> the
    coordinate check (``laws.transfer``), where asked.

Nothing trains, and nothing is written, before every check that can refuse the input: an
existing store is opened and each sweep it holds of the ladder checked against the ladder's
definition before the range test; a new store is created only when the ladder starts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from lrkit import validation as check
from lrkit.advise.driver import budget_range_test
from lrkit.advise.settings import AdviseSettings
from lrkit.data.tensors import TensorData
from lrkit.errors import InvalidParameterError, LrkitValueError
from lrkit.imports import load_object
from lrkit.laws.analysis import LawsAnalysis, Target, analyse
from lrkit.laws.ladder import LadderPlan, Rung, SizeFactory, at_size, point_definition, run_ladder
from lrkit.laws.parameters import check_counts, ladder_counts, target_count
from lrkit.laws.points import Ladder
from lrkit.laws.settings import LawsSettings
from lrkit.laws.transfer import CoordinateCheck, coordinate_check
from lrkit.sweep.definition import SweepDefinition
from lrkit.sweep.engines.names import AUTO, SEQUENTIAL
from lrkit.sweep.engines.registry import EngineRequest
from lrkit.sweep.runner import SweepEvents
from lrkit.sweep.store import Store
from lrkit.training.device import resolve_device
from lrkit.training.optimizers import make_optimizer
from lrkit.workload import Workload, built_model


def _silent(note: str) -> None:
    """A note nobody hears."""


def _no_trial_events() -> AbstractContextManager[SweepEvents]:
    return contextlib.nullcontext(SweepEvents())


@dataclass(frozen=True)
class LawsEvents:
    """What the caller hears of :func:`run_laws`; every one optional."""

    on_note: Callable[[str], None] = _silent
    """A remark on the way (the CLI's stderr): N at the target extrapolated, not counted; the
    horizons trained from scratch because the engine stacks trials."""
    storing: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
    """Entered around the ladder's run, Ray's session and the store's opening included: a
    stop in it leaves the finished runs in the store, to resume from."""
    trials: Callable[[], AbstractContextManager[SweepEvents]] = _no_trial_events
    """Entered around the ladder's trials, inside Ray's session: the events they report to
    (the CLI's progress bar)."""


@dataclass(frozen=True)
class LawsRun:
    """What a ladder found."""

    rungs: tuple[Rung, ...]
    ladder: Ladder
    analysis: LawsAnalysis
    coordinates: CoordinateCheck | None
    """The coordinate check, where asked."""
    center: float
    """The centre of every point's lr grid: given, or the range test's suggestion."""


def run_laws(
    work: Workload,
    settings: LawsSettings,
    engine: EngineRequest,
    events: LawsEvents | None = None,
) -> LawsRun:
    """The ladder ``settings`` describe, trained on ``work``'s data and loss (the family is
    ``settings.model``, called with the size; ``work``'s own model factory is not used) on
    ``engine``, its laws and forecast, as the module's docstring says."""
    events = events or LawsEvents()
    ladder = _check_data(work, settings)
    spec, axis = settings.model, settings.axis
    factory = size_factory(load_object(spec, "--model"), spec, axis)
    counts = ladder_counts(factory, settings.sizes)
    check_counts(counts, spec, axis)
    target = None
    if settings.forecasts:
        target = _target(factory, counts, ladder, settings)
        if target.extrapolated:
            events.on_note(
                f"N at {axis} {target.size} is {target.parameters}, extrapolated as "
                f"{target.extrapolated}"
            )
    device = resolve_device(settings.device)
    definition = settings.definition()
    branch = _branches(settings, ladder, engine, events.on_note)
    _check_resumable(settings.store, ladder, definition, settings.name)
    center = settings.lr if settings.lr is not None else _center(factory, work, ladder, settings)
    plan = LadderPlan(
        ladder,
        definition,
        center,
        settings.octaves,
        settings.per_octave,
        settings.repeats,
        name=settings.name,
        branch=branch,
    )
    with (
        events.storing(),
        engine.session(),
        events.trials() as trial_events,
        Store.open(settings.store) as store,
    ):
        rungs = run_ladder(
            factory, work, store, plan, device=device, engine=engine, events=trial_events
        )
    analysis = analyse(rungs, ladder, target, seed=settings.seed)
    coordinates = None
    if settings.check_transfer:
        coordinates = _coordinate_check(factory, work, settings, center)
    return LawsRun(rungs, ladder, analysis, coordinates, center)


def _check_data(work: Workload, settings: LawsSettings) -> Ladder:
    """The ladder on ``work``'s training set, refusing data it cannot train on: tensors with a
    validation part, no fewer training examples than the largest --examples and
    --batch-size, and every run at least one optimizer step and at most ``MAX_STEPS`` (the
    shortest horizon on the fewest examples in the largest batches, the longest on the most
    in the smallest)."""
    if not isinstance(work.train, TensorData) or work.val is None:
        raise LrkitValueError("--data: lrkit laws needs tensor data with a validation part")
    n_train = len(work.train)
    for option, values in (
        ("examples", settings.examples or ()),
        ("batch_size", settings.batch_sizes),
    ):
        if values and max(values) > n_train:
            raise InvalidParameterError(
                option, f"at most the training examples ({n_train})", max(values)
            )
    examples = settings.examples or (n_train,)
    epochs, batch_sizes = settings.epochs, settings.batch_sizes
    check.budget_steps("epochs", min(epochs), min(examples), max(batch_sizes))
    check.budget_steps("epochs", max(epochs), max(examples), min(batch_sizes))
    return settings.ladder(n_train)


def size_factory(family: object, spec: str, axis: str) -> SizeFactory:
    """``size -> nn.Module`` from the user's ``family`` (``--model spec``), its failures as
    one-line errors."""
    if not callable(family):
        raise LrkitValueError(f"--model {spec} is not callable: give a function of the {axis}")
    return lambda size: built_model(family, spec, size, where=f" at {axis} {size}")


def _target(
    factory: SizeFactory, counts: dict[int, int], ladder: Ladder, settings: LawsSettings
) -> Target:
    """Where the ``predict_*`` settings ask to predict, each one not given the ladder's
    largest, its N counted without building the model (``laws.parameters.target_count``)."""
    size = settings.predict_size or max(ladder.sizes)
    count = target_count(factory, counts, size, settings.model, ladder.axis)
    return Target(
        size,
        count.parameters,
        settings.predict_examples or max(ladder.examples),
        settings.predict_epochs or max(ladder.epochs),
        settings.predict_batch_size,
        count.extrapolated,
    )


def _branches(
    settings: LawsSettings, ladder: Ladder, engine: EngineRequest, note: Callable[[str], None]
) -> bool:
    """Whether the horizons branch off one run per lr: asked, a ladder of epochs, and an
    engine that may train one trial at a time (auto or sequential: branching runs on the
    sequential engine). On an engine that stacks, they train from scratch, with a note."""
    if not (settings.branch and "epochs" in ladder.varies):
        return False
    if engine.name in (AUTO, SEQUENTIAL):
        return True
    note(
        f"--engine {engine.name}: the horizons train from scratch on it (branching runs on "
        "the sequential engine; --no-branch says so)"
    )
    return False


def _check_resumable(path: Path, ladder: Ladder, definition: SweepDefinition, name: str) -> None:
    """An existing store opened, and each sweep of the ladder it holds checked against the
    ladder's definition, before any training (the range test included); a new store is
    created only when the ladder starts, so that a refusal before then leaves nothing."""
    if not path.exists():
        return
    with Store.open(path) as opened:
        for point in ladder.points():
            opened.check_definition(
                ladder.sweep_name(name, point), point_definition(definition, ladder, point)
            )


def _center(factory: SizeFactory, work: Workload, ladder: Ladder, settings: LawsSettings) -> float:
    """The range test's suggestion at the ladder's smallest point, on its examples, batch
    size and horizon."""
    smallest = ladder.points()[0]
    train = work.train
    assert isinstance(train, TensorData)  # _check_data has refused anything else
    race = AdviseSettings(
        epochs=smallest.epochs,
        batch_size=smallest.batch_size,
        optimizer=settings.optimizer,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        seed=settings.seed,
    )
    on_examples = replace(work, train=train.head(smallest.examples))
    return range_test_center(factory, smallest.size, on_examples, race)


def range_test_center(
    factory: SizeFactory, size: int, work: Workload, settings: AdviseSettings
) -> float:
    """The range test's suggestion for the model at ``size`` (the ladder's smallest) on
    ``work``'s tensors, as ``advise`` runs it over the steps of ``settings``' budget (epochs
    at its batch size) with its optimizer; the model is initialised as the ladder's
    seed-``settings.seed`` runs are (the global RNG seeded inside, left as it was), so the
    grid's centre does not depend on what ran before."""
    train, val = work.train, work.val
    assert isinstance(train, TensorData) and val is not None
    steps = math.ceil(settings.epochs * math.ceil(len(train) / settings.batch_size))
    net = at_size(factory, size)(settings.seed)
    found = budget_range_test(net, train, val, settings, work.loss_fn, steps)
    suggested = found.suggested_or_least
    if suggested is None:
        raise LrkitValueError(
            "the range test at the smallest width suggested no learning rate (the loss never "
            "fell): give --lr"
        )
    return float(suggested)


def _coordinate_check(
    factory: SizeFactory, work: Workload, settings: LawsSettings, lr: float
) -> CoordinateCheck:
    """The coordinate check over the ladder's widths, at ``lr`` with the runs' optimizer, in
    batches of the smallest batch size."""
    train = work.train
    assert isinstance(train, TensorData)  # _check_data has refused anything else
    return coordinate_check(
        factory,
        lambda net: make_optimizer(
            settings.optimizer, net, lr, settings.momentum, settings.weight_decay
        ),
        settings.sizes,
        train,
        work.loss_fn,
        batch_size=min(min(settings.batch_sizes), len(train)),
    )
