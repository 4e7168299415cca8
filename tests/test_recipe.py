"""The user's recipe (``schedules.recipe``: a warm-up, then a schedule over the rest of the
budget) and optimizers by import path with JSON arguments (``training.optimizers``)."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from lrkit.errors import LrkitValueError
from lrkit.schedules.recipe import Recipe
from lrkit.training.optimizers import (
    OptimizerSpec,
    check_optimizer_spec,
    make_optimizer,
    optimizer_args,
)

# the recipe


def test_a_constant_recipe_has_no_schedule() -> None:
    assert Recipe().constant and Recipe().build(0.1, 100) is None
    assert Recipe().label() == "constant"


@given(st.floats(1e-4, 10.0), st.integers(20, 5000), st.sampled_from([0.0, 0.05, 0.1, 0.3]))
def test_cosine_after_a_warm_up_peaks_and_reaches_its_floor_at_the_budget(
    peak: float, iterations: int, share: float
) -> None:
    schedule = Recipe("cosine", share).build(peak, iterations)
    assert schedule is not None
    warm = round(share * iterations) if share else 0
    warm = max(warm, 1) if share else 0
    if warm:
        assert schedule(0) == 0.0  # the warm-up starts from 0 (linear, Goyal et al. 2017)
        assert schedule(warm // 2) == pytest.approx(peak * (warm // 2) / warm)
    assert schedule(warm) == pytest.approx(peak)  # the peak: the lr the race compares
    rest = iterations - warm
    # HF's get_cosine_schedule_with_warmup: 0.5 (1 + cos(pi (t - W) / (N - W))) after W.
    t = warm + rest // 3
    assert schedule(t) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * (rest // 3) / rest)))
    assert schedule(iterations) == pytest.approx(0.0, abs=1e-12 * peak)


def test_a_warm_up_alone_then_holds_the_peak() -> None:
    schedule = Recipe(None, 0.1).build(0.5, 100)
    assert schedule is not None
    assert [schedule(t) for t in (0, 5, 10, 50, 99)] == pytest.approx([0, 0.25, 0.5, 0.5, 0.5])


def test_a_schedules_parameters_are_taken_and_its_rate_is_the_recipes() -> None:
    schedule = Recipe("wsd:cooldown_fraction=0.5", 0.0).build(2.0, 100)
    assert schedule is not None
    assert schedule(49) == 2.0 and schedule(75) == pytest.approx(1.0, rel=0.05)


def test_a_factory_owns_the_length_after_the_warm_up() -> None:
    seen = []

    def factory(peak: float, iterations: int) -> object:
        seen.append((peak, iterations))
        return lambda t: peak * (1 - t / iterations)

    schedule = Recipe(factory=factory, warmup=0.2).build(1.0, 50)  # type: ignore[arg-type]
    assert schedule is not None and seen == [(1.0, 40)]
    assert schedule(10) == 1.0 and schedule(30) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (lambda: Recipe("nope"), "nope"),
        (lambda: Recipe("cosine:floor=1").check(), "floor"),
        (lambda: Recipe("cosine:base_lr=1").check(), "base_lr comes from"),
        (lambda: Recipe("cosine", 1.0), "warmup"),
        (lambda: Recipe("cosine", -0.1), "warmup"),
    ],
)
def test_a_bad_recipe_is_refused_with_what_is_wrong(recipe: object, message: str) -> None:
    with pytest.raises(LrkitValueError, match=re.escape(message)):
        made = recipe()  # type: ignore[operator]
        if isinstance(made, Recipe):
            made.check()


# optimizers by path


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def test_an_optimizer_by_path_gets_the_lr_and_its_json_arguments() -> None:
    opt = make_optimizer(
        "torch.optim:RAdam", model(), 0.01, args='{"betas": [0.8, 0.9], "eps": 1e-6}'
    )
    assert isinstance(opt, torch.optim.RAdam)
    group = opt.param_groups[0]
    assert group["lr"] == 0.01 and group["betas"] == (0.8, 0.9) and group["eps"] == 1e-6


def test_a_named_optimizer_takes_arguments_too_and_weight_decay_once() -> None:
    opt = make_optimizer("momentum", model(), 0.1, 0.8, 1e-4, '{"nesterov": true}')
    group = opt.param_groups[0]
    assert group["momentum"] == 0.8 and group["nesterov"] and group["weight_decay"] == 1e-4
    with pytest.raises(LrkitValueError, match="give it once"):
        make_optimizer("adamw", model(), 0.1, weight_decay=0.1, args='{"weight_decay": 0.2}')


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("torch.optim:Nope", None, "torch.optim has no Nope"),
        ("no_such_module_xyz:Opt", None, "cannot import"),
        ("torch.nn:Linear", None, "not a torch.optim.Optimizer subclass"),
        ("sgdd", None, "must be one of sgd, momentum, adam, adamw or module:Class"),
        ("adam", "{bad", "not valid JSON"),
        ("adam", "[1, 2]", "must be a JSON object"),
        ("adam", '{"lr": 0.1}', "the learning rate is what lrkit chooses"),
        ("adam", '{"betas": [2.0, 0.9]}', "adam refuses them: Invalid beta parameter"),
        ("torch.optim:RAdam", '{"momentum": 0.9}', "RAdam refuses them"),
    ],
)
def test_a_bad_optimizer_is_refused_before_training(
    name: str, args: str | None, message: str
) -> None:
    with pytest.raises(LrkitValueError, match=re.escape(message)):
        check_optimizer_spec(name, 0.9, 0.0, args)


def test_empty_arguments_are_none() -> None:
    assert optimizer_args(None) == {} and optimizer_args("  ") == {}


def test_a_factory_spec_builds_with_the_lr_and_is_never_stacked() -> None:
    spec = OptimizerSpec(factory=lambda params, lr: torch.optim.NAdam(params, lr=lr))
    spec.check()
    opt = spec.build(model().parameters(), 0.003)
    assert isinstance(opt, torch.optim.NAdam) and opt.param_groups[0]["lr"] == 0.003
    assert spec.label.startswith("a factory") and not spec.adaptive
    with pytest.raises(LrkitValueError, match=r"not a torch\.optim\.Optimizer"):
        OptimizerSpec(factory=lambda params, lr: None).check()  # type: ignore[arg-type,return-value]
