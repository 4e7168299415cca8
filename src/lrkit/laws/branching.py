"""A ladder of training horizons branched off one run: every horizon's cooldown starts from
the state of a single long run at the iteration where that horizon's schedule first leaves
the long run's, instead of training every horizon from the start.

Hägele et al. (2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations") train one constant-rate run and branch a short cooldown off it at each horizon
they want, so that a whole ladder of lengths costs little more than its longest run (the
warm-up-stable-decay schedule of Hu et al. 2024, MiniCPM; ``schedules.stable_decay``).

**Branch points.** For each grid key the longest horizon T (N_T iterations) is the *trunk*.
The loop trains step i (1-based) at lr(i - 1), so a horizon H of N_H iterations takes the
trunk's steps up to

    d_H = min{t < N_H : lr_T(t) != lr_H(t)}   (N_H when no such t, or without a schedule)

found by comparing the two schedules iteration by iteration (exact, for any schedule: a WSD
run leaves the constant rate after its cooldown start s_H, a cosine one after iteration 0).
H branches at b_H, the last check of the trunk at or before d_H (0 when there is none): a
check falls at the same iterations in every horizon up to its end (``training.clock``), so
at b_H the trunk and H have the same weights, optimizer state, data position, curve points
and next check, and the training loss of every interval is the mean over the same steps.
H then trains its remaining N_H - b_H iterations from the trunk's checkpoint with its own
schedule; with b_H = N_H its trial is the trunk's up to there, and with b_H = 0 it is
trained from scratch. Moving the branch back to a check costs at most one check interval a
horizon and makes every stored field equal to the from-scratch run's.

**The saving**, in iterations trained for one key:

    from scratch   sum_H N_H
    branched       N_T + sum_{H != T} (N_H - b_H)
    saved          sum_{H != T} b_H

With WSD (cooldown fraction f) and checks on the cooldown starts, b_H = (1 - f) N_H: horizons
of 1, 2 and 4 epochs of I iterations with f = 0.25 cost 4I + 0.25 (I + 2I) = 4.75I instead of
7I (32% saved); a doubling ladder saves close to (1 - f) / 2 of the from-scratch cost.

**What is equal.** On a CPU every horizon's stored trial (status, diverged iteration, every
curve point, final and best validation metrics, test accuracy) is bitwise the one that
``run_sweep`` with the sequential engine stores training it from scratch; only ``seconds``
differs (a branch counts the trunk's time up to b_H). A trunk that diverges or fails before
a branch point gives that outcome to every horizon branching at or after it: such a horizon
takes the same steps up to the check that found it. Two things break the equality:

- a model that draws from the global RNG as it trains (dropout): a trial resumed from a
  checkpoint draws from a seed of its own (``training.loop.trial_rng_seed``), so the trunk
  past its first branch and every branch draw other masks than a run from scratch;
- the vectorized engine, whose stacked arithmetic may differ from the plain loop's in the
  last bits, and GPU kernels that are not deterministic.

**Through the engine contract.** Every piece is a ``TrialJob`` handed to the sequential
engine (``sweep.engines.registry``), one job at a time in this process, in the order the
pieces depend on each other: a trunk segment from the last branch point (``plan.start``) to
the next, kept as a checkpoint (``plan.keep_checkpoint``), then the branches that start from
it. Each horizon's trial is stored by the runner's bookkeeping (``sweep.runner.TrialBook``),
as a sweep's are. Checkpoints stay in memory and are not persisted: resumed, a key with some
horizons missing trains its trunk again, up to the last branch point it needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace

import torch

from lrkit.errors import LrkitValueError, quoted
from lrkit.schedules.base import Schedule
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.engines.contract import Engine, EngineEvents, TrainingSetup, TrialJob
from lrkit.sweep.engines.registry import make_engine, sequential_choice
from lrkit.sweep.runner import SweepEvents, TrialBook
from lrkit.sweep.store import Store, StoredTrial
from lrkit.sweep.trials import SweepPlan, check_plan, trial_jobs
from lrkit.training.records import Checkpoint, TrialOutcome, TrialPlan
from lrkit.workload import Workload


@dataclass(frozen=True)
class Branch:
    """Where one horizon leaves the trunk."""

    iteration: int
    """b: the steps it shares with the trunk (0: trained from scratch)."""
    progress: float
    """Epochs done at b."""
    iterations: int
    """N: the horizon's length in iterations."""


def first_difference(trunk: Schedule | None, horizon: Schedule | None, iterations: int) -> int:
    """d = min{t < iterations : trunk(t) != horizon(t)}, or ``iterations`` when the two agree
    on all of them (or neither has a schedule): the steps a horizon of ``iterations`` takes
    at the trunk's rates."""
    if trunk is None or horizon is None:
        return iterations
    return next((t for t in range(iterations) if trunk(t) != horizon(t)), iterations)


def checks(plan: TrialPlan, n_train: int) -> list[tuple[int, float]]:
    """(iteration, epochs done) of every check of ``plan`` over ``n_train`` examples, the last
    step's included, read off its clock."""
    clock = plan.clock(n_train, [plan.seed], torch.device("cpu"))
    return [(step.iteration, step.progress) for step in clock if step.check]


def branch_point(trunk: TrialPlan, horizon: TrialPlan, n_train: int) -> Branch:
    """The last check of ``trunk`` at or before the first iteration at which ``horizon``'s
    schedule leaves the trunk's (the module's b_H)."""
    trunk_checks = checks(trunk, n_train)
    iterations = checks(horizon, n_train)[-1][0]
    shared = first_difference(trunk.schedule, horizon.schedule, iterations)
    iteration, progress = max(c for c in [(0, 0.0), *trunk_checks] if c[0] <= shared)
    return Branch(iteration, progress, iterations)


def check_horizons(plans: Sequence[SweepPlan]) -> None:
    """Refuse a ladder whose sweeps differ in anything but their epochs, or repeat one."""
    if not plans:
        raise LrkitValueError("plans: a horizon ladder needs at least one sweep")
    first = plans[0]
    names = [p.name for p in plans]
    epochs = [str(p.definition.epochs) for p in plans]
    for values, what in ((names, "name"), (epochs, "epochs")):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise LrkitValueError(
                f"plans: two sweeps have {what} {', '.join(twice)}; give each horizon once"
            )
    for plan in plans[1:]:
        differ = [
            f.name
            for f in fields(SweepDefinition)
            if f.name != "epochs"
            and getattr(plan.definition, f.name) != getattr(first.definition, f.name)
        ]
        if set(plan.grid) != set(first.grid):
            differ.append("grid")
        if differ:
            raise LrkitValueError(
                f"plans: sweep {quoted(plan.name)} differs from {quoted(first.name)} in "
                f"{', '.join(differ)}; the horizons of a ladder may differ only in epochs"
            )


def run_branched(
    store: Store,
    plans: Sequence[SweepPlan],
    work: Workload,
    device: torch.device | None = None,
    events: SweepEvents | None = None,
) -> list[list[StoredTrial]]:
    """Run every trial of ``plans`` (horizons that differ only in epochs) that the store does
    not hold finished, each key's horizons branched off one trunk as the module says; return
    each plan's trials, as ``run_sweep`` would.

    Every trial goes into its own plan's sweep (name and definition as given), so a later
    ``run_sweep`` of a plan finds it finished. ``events`` hears ``on_engine`` (sequential),
    and ``on_trial_start`` for each horizon missing when its key's trunk starts and
    ``on_trial_end`` as each is stored; never ``on_check``, as a trunk's checks belong to
    several trials."""
    events = events or SweepEvents()
    device = device or torch.device("cpu")
    check_horizons(plans)
    checked = [check_plan(plan, work, device) for plan in plans]
    train, val = checked[0]
    setup = TrainingSetup(work.make_model, work.loss_fn, train, val, work.test, device)
    setup = setup.on(device)
    sweep_ids = [store.sweep(p.name, p.definition) for p in plans]
    done = [store.finished(s) for s in sweep_ids]
    todo = [(key, [i for i in range(len(plans)) if key not in done[i]]) for key in plans[0].grid]
    todo = [(key, missing) for key, missing in todo if missing]
    choice = sequential_choice()
    engine = make_engine(choice)
    if events.on_engine is not None:
        events.on_engine(choice)
    book = TrialBook(store, sum(len(missing) for _, missing in todo), events)
    with book.rows.forgotten_if_stopped():
        for key, missing in todo:
            for i in missing:
                book.start(sweep_ids[i], key, plans[i].definition.seed + key.repeat)
            for i, outcome in _horizons(engine, key, plans, missing, setup):
                book.end(sweep_ids[i], key, outcome)
    grid = set(plans[0].grid)
    return [[t for t in store.trials(p.name) if t.key in grid] for p in plans]


def _horizons(
    engine: Engine,
    key: TrialKey,
    plans: Sequence[SweepPlan],
    missing: Sequence[int],
    setup: TrainingSetup,
) -> Iterator[tuple[int, TrialOutcome]]:
    """(plan index, outcome) of each of ``missing``, as soon as each has ended: the trunk
    trained by ``engine`` from branch point to branch point, each horizon branched off where
    it leaves."""
    n_train = len(setup.train)
    jobs = [trial_jobs(p.definition, [key], n_train)[0] for p in plans]
    trunk = max(range(len(plans)), key=lambda i: plans[i].definition.epochs)
    at = {i: branch_point(jobs[trunk].plan, jobs[i].plan, n_train) for i in missing}
    for i in missing:
        if at[i].iteration == 0:
            yield i, _trained(engine, jobs[i], setup)
    start: Checkpoint | None = None
    for iteration, progress in sorted({(b.iteration, b.progress) for b in at.values()}):
        if iteration == 0:
            continue
        here = [i for i in missing if at[i].iteration == iteration]
        ending = [i for i in here if at[i].iterations == iteration]
        segment = _resumed(jobs[trunk], start, progress, keep_checkpoint=True)
        outcome = _trained(engine, segment, setup if ending else replace(setup, test=None))
        if outcome.checkpoint is None:  # diverged or failed: so would every later horizon
            for i in missing:
                if at[i].iteration >= iteration:
                    yield i, outcome
            return
        start = outcome.checkpoint
        for i in here:
            if i in ending:
                yield i, replace(outcome, checkpoint=None)
            else:
                branch = _resumed(jobs[i], start, jobs[i].plan.epochs, keep_checkpoint=False)
                yield i, _trained(engine, branch, setup)


def _trained(engine: Engine, job: TrialJob, setup: TrainingSetup) -> TrialOutcome:
    """The outcome of ``job``, trained by ``engine``. One job a call: the horizons of a key
    share the key, which is all an engine reports an outcome by, and a trunk's next segment
    starts from the checkpoint its last one ended with."""
    ended: list[TrialOutcome] = []
    engine.run([job], setup, EngineEvents(lambda _, outcome: ended.append(outcome)))
    (outcome,) = ended
    return outcome


def _resumed(
    job: TrialJob, start: Checkpoint | None, epochs: float, *, keep_checkpoint: bool
) -> TrialJob:
    """``job`` from ``start`` (from scratch when None) up to ``epochs``."""
    plan = replace(job.plan, epochs=epochs, start=start, keep_checkpoint=keep_checkpoint)
    return replace(job, plan=plan)
