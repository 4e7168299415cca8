"""The engines by name, and the choice of one for a run.

One table (``ENGINE_BUILDERS``) takes an engine's name to what builds it; everything else
asks here. A run states what it wants as an :class:`EngineRequest` (a name from
``names.ENGINES``, workers, a Ray cluster's address); :func:`choose_engine` settles it against
the run's optimizer and model (``auto`` and ``vectorized`` stack only plain and momentum SGD on
a model ``training.vectorized.network`` can convert, else one trial at a time, with the
reason), and :func:`make_engine` builds the chosen :class:`~contract.Engine`. Callers are
handed that engine; none spells an engine's name. Adding an engine is one entry in the table
and its name in ``names``.

The checks a command makes of ``--engine``, ``--workers`` and ``--address`` before any work
live here too, so that every verb refuses the same things in the same words. Importing this
module imports neither torch nor the engines (the CLI checks its options first)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lrkit import validation as check
from lrkit.errors import LrkitValueError
from lrkit.sweep.engines.names import AUTO, ENGINES, RAY, SEQUENTIAL, VECTORIZED, may_stack

if TYPE_CHECKING:
    from torch import nn

    from lrkit.data.features import Inputs
    from lrkit.sweep.engines.contract import Engine


@dataclass(frozen=True)
class EngineRequest:
    """The engine a run asks for: ``name`` (auto, sequential, vectorized or ray), its
    ``workers`` (processes of a local engine, one per CPU core by default; with ray the least
    number of tasks, 1 by default) and the Ray cluster's ``address`` (default: a local
    instance). With ``spread_trials``, trials that cannot be stacked also spread over the
    cores (advise's race); otherwise they run one at a time (a sweep)."""

    name: str = AUTO
    workers: int | None = None
    address: str | None = None
    spread_trials: bool = False

    @property
    def remote(self) -> bool:
        """Whether the trials run as Ray tasks."""
        return self.name == RAY

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """Ray, connected for the whole block, when the request is remote; else nothing."""
        if not self.remote:
            return contextlib.nullcontext()
        from lrkit.sweep.engines.ray import ray_session

        return ray_session(self.address)


@dataclass(frozen=True)
class EngineChoice:
    """The engine a run got, and why it is not the one asked for."""

    engine: str
    """sequential, vectorized or ray."""
    reason: str | None = None
    """Why the trials were not stacked, when stacking was asked for (or auto)."""
    workers: int = 1
    """Processes of a local engine; with ray, the least number of tasks."""

    @property
    def remote(self) -> bool:
        """Whether the trials run as Ray tasks."""
        return self.engine == RAY


def _sequential(choice: EngineChoice, address: str | None) -> Engine:
    from lrkit.sweep.engines.sequential import SequentialEngine

    return SequentialEngine(choice.workers)


def _stacked(choice: EngineChoice, address: str | None) -> Engine:
    from lrkit.sweep.engines.stacked import StackedEngine

    return StackedEngine(choice.workers)


def _ray(choice: EngineChoice, address: str | None) -> Engine:
    from lrkit.sweep.engines.ray import RayEngine

    return RayEngine(address, choice.workers, stacked=choice.reason is None)


ENGINE_BUILDERS: dict[str, Callable[[EngineChoice, str | None], Engine]] = {
    SEQUENTIAL: _sequential,
    VECTORIZED: _stacked,
    RAY: _ray,
}
"""Each engine's name -> what builds it from a choice and a Ray address."""


def sequential_choice(workers: int = 1) -> EngineChoice:
    """One trial at a time on the plain loop (over ``workers`` processes)."""
    return EngineChoice(SEQUENTIAL, workers=workers)


def stacking_problem(optimizer: str, model: nn.Module, example: Inputs) -> str | None:
    """Why trials of ``model`` trained by ``optimizer`` cannot be stacked (``example``: a
    batch of inputs on the model's device), or None."""
    from lrkit.sweep.engines.contract import STACKABLE_OPTIMIZERS

    if optimizer not in STACKABLE_OPTIMIZERS:
        return f"the vectorized engine implements SGD (sgd, momentum), not {optimizer}"
    from lrkit.training.vectorized.network import NotStackableError, check_stackable

    try:
        check_stackable(model, example)
    except NotStackableError as exc:
        return str(exc)
    return None


def choose_engine(
    request: EngineRequest, optimizer: str, model: nn.Module, example: Inputs
) -> EngineChoice:
    """The engine for ``request``: sequential as asked; auto, vectorized and ray stack the
    trials when ``optimizer`` and ``model`` (one of the trials', on its device; ``example``
    a batch of inputs there) allow, else run them one at a time, with the reason. Workers:
    the request's, else one per CPU core for a local engine that spreads (stacks, or every
    trial with ``spread_trials``) and one otherwise; with ray, at least one task."""
    check.choice("engine", request.name, ENGINES)
    reason = stacking_problem(optimizer, model, example) if may_stack(request.name) else None
    stacks = may_stack(request.name) and reason is None
    workers = _workers(request, stacks or request.spread_trials, model, example)
    if request.remote:
        return EngineChoice(RAY, reason, workers)
    return EngineChoice(VECTORIZED if stacks else SEQUENTIAL, reason, workers)


def _workers(request: EngineRequest, spreads: bool, model: nn.Module, example: Inputs) -> int:
    """The request's workers where the run spreads over processes (or tasks), else one per
    CPU core of the model's device; one where it does not (at least one task with ray)."""
    from lrkit.sweep.engines.processes import default_workers

    if not spreads:
        return (request.workers or 1) if request.remote else 1
    if request.workers:
        return check.positive_int("workers", request.workers)
    parameter = next(model.parameters(), None)
    return default_workers(parameter.device if parameter is not None else example.device)


def make_engine(choice: EngineChoice, address: str | None = None) -> Engine:
    """The engine ``choice`` names, its trials on the Ray cluster at ``address`` for ray."""
    return ENGINE_BUILDERS[choice.engine](choice, address)


def check_engine(name: str, allowed: Sequence[str] = ENGINES) -> str:
    """--engine: one of ``allowed``."""
    return check.choice("engine", name, allowed)


def check_workers(workers: int | None, engine: str) -> int | None:
    """--workers: processes forked for a local engine, one per CPU core at most (more only
    take turns on the cores); with ``engine`` ray, the least number of Ray tasks, at most one
    a trial of the largest grid."""
    if workers is None:
        return None
    if engine == RAY:
        from lrkit.sweep.definition import MAX_TRIALS

        return check.int_in("workers", workers, 1, MAX_TRIALS)
    import torch

    from lrkit.sweep.engines.processes import default_workers

    cores = default_workers(torch.device("cpu"))
    return check.int_in("workers", workers, 1, cores, "one process a CPU core at most")


def check_address(engine: str, address: str | None) -> None:
    """--address: a Ray cluster that answers, given only with ``--engine ray`` (Ray must be
    installed for that engine whatever the address)."""
    if engine == RAY:
        from lrkit.sweep.engines.ray import require_ray

        require_ray(address)
    elif address is not None:
        raise LrkitValueError("--address belongs to --engine ray")
