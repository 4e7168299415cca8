"""The engines' registry: every name has a builder, and the choice of an engine and its
workers follows the rules each caller relies on (a sweep runs unstackable trials one at a
time; advise's race spreads them over the cores; Ray gets one task unless it stacks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrkit.errors import LrkitValueError
from lrkit.sweep.engines.names import AUTO, ENGINES, LOCAL_ENGINES, RAY, SEQUENTIAL, VECTORIZED
from lrkit.sweep.engines.processes import default_workers
from lrkit.sweep.engines.ray import RayEngine
from lrkit.sweep.engines.registry import (
    ENGINE_BUILDERS,
    EngineChoice,
    EngineRequest,
    check_address,
    check_engine,
    choose_engine,
    make_engine,
)
from lrkit.sweep.engines.sequential import SequentialEngine
from lrkit.sweep.engines.stacked import StackedEngine

CORES = default_workers(torch.device("cpu"))
EXAMPLE = torch.zeros(2, 4)
ADAM_REASON = "the vectorized engine implements SGD (sgd, momentum), not adam"


def stackable() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_every_engine_has_a_builder_and_auto_is_a_request() -> None:
    assert set(ENGINE_BUILDERS) == set(ENGINES) - {AUTO}
    assert set(LOCAL_ENGINES) == set(ENGINES) - {RAY}


@pytest.mark.parametrize(
    ("choice", "kind"),
    [
        (EngineChoice(SEQUENTIAL, workers=2), SequentialEngine),
        (EngineChoice(VECTORIZED, workers=2), StackedEngine),
        (EngineChoice(RAY, workers=3), RayEngine),
    ],
)
def test_make_engine_builds_the_engine_named(choice: EngineChoice, kind: type) -> None:
    engine = make_engine(choice, "ray://head:10001" if choice.remote else None)
    assert type(engine) is kind and engine.name == choice.engine


def test_ray_stacks_only_where_the_choice_had_no_reason() -> None:
    assert make_engine(EngineChoice(RAY, None, 2)).stacked  # type: ignore[attr-defined]
    assert not make_engine(EngineChoice(RAY, ADAM_REASON, 2)).stacked  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("request_", "optimizer", "expected"),
    [
        # a sweep: stacks spread over the cores, trials that cannot stack run one at a time
        (EngineRequest(AUTO), "sgd", EngineChoice(VECTORIZED, None, CORES)),
        (EngineRequest(AUTO, workers=1), "momentum", EngineChoice(VECTORIZED, None, 1)),
        (EngineRequest(VECTORIZED), "adam", EngineChoice(SEQUENTIAL, ADAM_REASON, 1)),
        (EngineRequest(SEQUENTIAL, workers=2), "sgd", EngineChoice(SEQUENTIAL, None, 1)),
        # advise's race: every engine over the cores
        (
            EngineRequest(AUTO, spread_trials=True),
            "adam",
            EngineChoice(SEQUENTIAL, ADAM_REASON, CORES),
        ),
        (
            EngineRequest(SEQUENTIAL, spread_trials=True),
            "sgd",
            EngineChoice(SEQUENTIAL, None, CORES),
        ),
        (
            EngineRequest(SEQUENTIAL, 1, spread_trials=True),
            "sgd",
            EngineChoice(SEQUENTIAL, None, 1),
        ),
        # Ray: stacks as at least one task a core, single trials as one task unless told
        (EngineRequest(RAY), "sgd", EngineChoice(RAY, None, CORES)),
        (EngineRequest(RAY), "adam", EngineChoice(RAY, ADAM_REASON, 1)),
        (EngineRequest(RAY, workers=5), "adam", EngineChoice(RAY, ADAM_REASON, 5)),
        (EngineRequest(RAY, spread_trials=True), "adam", EngineChoice(RAY, ADAM_REASON, CORES)),
    ],
)
def test_the_choice_and_its_workers(
    request_: EngineRequest, optimizer: str, expected: EngineChoice
) -> None:
    assert choose_engine(request_, optimizer, stackable(), EXAMPLE) == expected


def test_a_model_that_cannot_stack_runs_one_trial_at_a_time_and_says_why() -> None:
    choice = choose_engine(EngineRequest(AUTO), "sgd", nn.GRU(4, 3), EXAMPLE)
    assert choice.engine == SEQUENTIAL and choice.reason and choice.workers == 1


def test_checks_refuse_in_the_words_of_every_verb() -> None:
    with pytest.raises(LrkitValueError, match="--address belongs to --engine ray"):
        check_address(SEQUENTIAL, "ray://head:10001")
    check_address(AUTO, None)
    with pytest.raises(LrkitValueError, match="engine"):
        check_engine(RAY, LOCAL_ENGINES)
    assert check_engine(VECTORIZED) == VECTORIZED
