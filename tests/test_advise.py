"""`lrkit advise`: its candidates, its forecasts, its plan, the race through the engines (budget
accounting, stacked equals sequential, deterministic), the CLI and its bad inputs."""

from __future__ import annotations

import itertools
import json
import math
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from cli_run import run
from lrkit.advise import AdviseSettings, advise
from lrkit.advise.candidates import MERGE_RATIO, REACH, Candidate, candidate_lrs
from lrkit.advise.confidence import as_good_as_winner, cautions, confidence
from lrkit.advise.driver import (
    COST_TARGET,
    EXTENDED_TARGET,
    MAX_EXTENSIONS,
    MIN_CANDIDATES,
    affordable,
    edge_extensions,
)
from lrkit.advise.horizon import horizon_factor
from lrkit.advise.plan import race_plan, trial_epochs
from lrkit.advise.race import EDGE_STEP, RaceFailed, RaceSetup, race, result_rank
from lrkit.advise.result import RacedCandidate
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.schedules.recipe import Recipe
from lrkit.sweep.engines.contract import TrainingSetup
from lrkit.sweep.engines.registry import EngineChoice, make_engine
from lrkit.training.loop import train_trial
from lrkit.training.optimizers import ADAPTIVE, OptimizerSpec
from lrkit.training.records import CurvePoint, TrialOutcome, TrialPlan

# candidates


def test_the_ladder_surrounds_the_default_and_near_rules_join_it() -> None:
    found, left_out = candidate_lrs(
        {"turning_point": 0.4, "valley": 0.003, "steepest": 0.41, "minimum": 0.05}, limit=16
    )
    lrs = [c.lr for c in found]
    assert lrs == sorted(lrs)
    assert pytest.approx(lrs) == [0.05, 0.2, 0.4, 0.8, 1.6]
    by_lr = {round(c.lr, 6): c.sources for c in found}
    assert by_lr[0.4] == ("turning_point", "steepest")  # within MERGE_RATIO: one candidate
    assert by_lr[1.6] == ("ladder x4",)
    assert left_out == (("valley", 0.003),)  # more than REACH below the default


def test_the_limit_keeps_the_centre_then_the_nearest_rungs_then_the_rules() -> None:
    found, _ = candidate_lrs(
        {"turning_point": 1.0, "valley": 0.2, "steepest": None, "minimum": 0.1}, limit=4
    )
    assert [c.sources[0] for c in found] == [
        "ladder x0.5",
        "turning_point",
        "ladder x2",
        "ladder x4",
    ]


def test_without_the_default_the_next_rule_is_the_centre() -> None:
    found, _ = candidate_lrs({"turning_point": None, "valley": 0.1, "steepest": 0.5}, limit=16)
    assert "valley" in [s for c in found for s in c.sources]
    assert pytest.approx(sorted(c.lr for c in found)) == [0.05, 0.1, 0.2, 0.4]
    with pytest.raises(LrkitValueError, match="suggests no learning rate"):
        candidate_lrs({"turning_point": None, "valley": None})


@given(
    suggestions=st.dictionaries(
        st.sampled_from(["turning_point", "valley", "steepest", "minimum"]),
        st.one_of(st.none(), st.floats(1e-6, 10.0)),
    ).filter(lambda d: any(v is not None for v in d.values())),
    limit=st.integers(2, 16),
)
def test_candidates_are_apart_within_the_limit_and_reach_and_hold_the_centre(
    suggestions: dict[str, float | None], limit: int
) -> None:
    found, left_out = candidate_lrs(suggestions, limit=limit)
    lrs = [c.lr for c in found]
    assert 1 <= len(found) <= limit
    assert all(b / a >= MERGE_RATIO for a, b in itertools.pairwise(lrs))
    centre = next(
        suggestions[r]
        for r in ("turning_point", "valley", "steepest", "minimum")
        if suggestions.get(r) is not None
    )
    assert any(math.isclose(c.lr, centre) for c in found)
    assert all(centre / REACH <= lr <= centre * REACH for lr in lrs)
    assert all(max(lr, centre) / min(lr, centre) > REACH for _, lr in left_out)


# plan


def test_the_plan_halves_at_a_sixth_and_picks_at_half_and_costs_its_closed_form() -> None:
    plan = race_plan(30.0, 6)
    assert [(r.epochs, r.keep) for r in plan] == [(5.0, 3), (15.0, 1)]
    assert trial_epochs(plan, 6) == pytest.approx(6 * 5 + 3 * 10)  # two budgets
    assert trial_epochs(race_plan(30.0, 5), 5) == pytest.approx(5 * 5 + 3 * 10)
    assert [(r.epochs, r.keep) for r in race_plan(12.0, 2)] == [(6.0, 1)]


@given(st.integers(1, 16), st.floats(0.5, 100))
def test_every_plan_picks_one_at_half_the_budget_within_its_cost(n: int, epochs: float) -> None:
    plan = race_plan(epochs, n)
    assert plan[-1].epochs == epochs / 2 and plan[-1].keep == 1
    assert all(a.epochs < b.epochs and a.keep > b.keep for a, b in itertools.pairwise(plan))
    closed = n * epochs / 2 if n <= 2 else n * epochs / 6 + math.ceil(n / 2) * epochs / 3
    assert trial_epochs(plan, n) == pytest.approx(closed)
    assert trial_epochs(plan, n) <= n * epochs / 2 + 1e-9  # never more than all to half


@given(
    st.integers(2, 16),
    st.floats(0.01, 1.5),
    st.floats(0.5, 200.0),
)
def test_the_candidates_and_the_edge_rule_fit_their_cost_targets(
    most: int, spent: float, epochs: float
) -> None:
    n = affordable(most, spent)
    plan = race_plan(epochs, n)
    race_cost = spent + trial_epochs(plan, n) / epochs
    assert n == min(most, MIN_CANDIDATES) or race_cost <= COST_TARGET + 1e-9
    extra = edge_extensions(plan, n, spent, epochs)
    assert 0 <= extra <= MAX_EXTENSIONS
    if extra:
        assert race_cost + extra * plan[0].epochs / epochs <= EXTENDED_TARGET + 1e-9
    if race_cost + plan[0].epochs / epochs <= EXTENDED_TARGET - 1e-6:
        assert extra >= 1


# the race, on a small problem


def problem() -> tuple[TensorData, TensorData]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(900, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long()
    return TensorData(x[:700], y[:700]), TensorData(x[700:], y[700:])


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))


def settings(**changes: object) -> AdviseSettings:
    base = {"epochs": 3.0, "batch_size": 32, "workers": 1, "candidates": 6}
    return AdviseSettings(**{**base, **changes})  # type: ignore[arg-type]


def test_the_race_trains_its_plan_and_advises_the_winner_of_the_last_rung() -> None:
    train, val = problem()
    found = advise(make_model, train, val, settings(engine="sequential"))
    added = sum(any(s.startswith("edge") for s in c.sources) for c in found.candidates)
    planned = len(found.candidates) - added
    plan = race_plan(3.0, planned)
    assert found.trial_epochs == pytest.approx(trial_epochs(plan, planned) + added * 0.5)
    # Every candidate stopped at a rung's end, as many at each as the plan keeps, and the
    # epochs they trained add up to the plan's cost (each goes on from its checkpoint; the
    # edge rule's candidates join the first rung).
    assert all(c.status == "done" for c in found.candidates)
    ends = [c.epochs_run for c in found.candidates]
    alive = len(found.candidates)
    for rung in plan:
        assert sum(e >= rung.epochs - 1e-9 for e in ends) == alive
        alive = rung.keep
    assert sum(ends) == pytest.approx(found.trial_epochs)
    last = [c for c in found.candidates if c.epochs_run == plan[-1].epochs]
    chosen = next(c for c in found.candidates if c.lr == found.lr)
    assert chosen in last and chosen.value == max(c.value for c in last)
    assert found.raced_lr == found.lr and found.horizon_factor == 1.0  # sgd: the winner itself
    assert found.horizon_note() is None and found.decided_at == plan[-1].epochs
    assert [found.mark(c.lr) for c in found.candidates].count("advised") == 1
    assert {found.mark(c.lr) for c in found.candidates} == {"advised", ""}
    assert found.metric == "accuracy" and 0.5 < found.value <= 1.0
    assert found.runner_up in [c.lr for c in last] and found.runner_up != found.lr
    assert json.loads(json.dumps(found.to_json()))["candidates"][0]["batch_size"] == 32


def test_advice_on_a_dropout_model_is_the_same_whatever_the_global_rng_was() -> None:
    # Dropout draws from the global RNG: advise forks it and seeds it from its settings, and
    # every trial of the race seeds its own (``training.loop.trial_rng_seed``), so neither
    # what ran before nor which worker ran a trial moves the advice.
    train, val = problem()

    def dropout_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))

    found = []
    for state in (1, 2):
        torch.manual_seed(state)
        torch.rand(state * 7)
        before = torch.get_rng_state()
        found.append(advise(dropout_model, train, val, settings(engine="sequential", epochs=2.0)))
        assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is kept
    first, second = (json.dumps(f.to_json()["candidates"]) for f in found)
    assert first == second and found[0].lr == found[1].lr


def race_of(optimizer: str, lrs: list[float], extensions: int) -> tuple[list[float], float]:
    """The lrs a race over ``lrs`` ran (candidates and the ones it added) and its winner."""
    train, val = problem()
    setup = TrainingSetup(make_model, nn.CrossEntropyLoss(), train, val, None, torch.device("cpu"))
    engine = make_engine(EngineChoice("sequential"), None)
    rs = RaceSetup(setup, engine, 32, "accuracy", OptimizerSpec(optimizer, 0.9, 0.0), 0)
    candidates = [Candidate(lr, ("test",)) for lr in lrs]
    raced, ranking, _ = race(candidates, race_plan(3.0, len(lrs)), rs, None, extensions)
    assert [c.lr for c in raced] == sorted(c.lr for c in raced)
    return [c.lr for c in raced], ranking[0]


# the horizon: the winner at half the budget, scaled to the budget


def test_the_horizon_factor_is_the_square_root_of_the_share_judged_for_adaptive_optimizers() -> (
    None
):
    assert horizon_factor(OptimizerSpec("adam"), Recipe(), 1.5, 3.0) == pytest.approx(
        math.sqrt(0.5)
    )
    assert horizon_factor(OptimizerSpec("adamw"), Recipe(), 1.0, 9.0) == pytest.approx(1 / 3)
    assert (
        horizon_factor(OptimizerSpec("sgd"), Recipe(), 1.5, 3.0)
        == horizon_factor(OptimizerSpec("momentum"), Recipe(), 1.5, 3.0)
        == 1.0
    )
    assert (
        horizon_factor(OptimizerSpec("adam"), Recipe(), 3.0, 3.0) == 1.0
    )  # judged at the budget: nothing to scale
    assert horizon_factor(OptimizerSpec("adam"), Recipe(), 0.0, 3.0) == 1.0


@given(
    st.sampled_from(["sgd", "momentum", "adam", "adamw"]),
    st.floats(1e-3, 1e3),
    st.floats(1e-3, 1e3),
)
def test_the_horizon_factor_minimises_the_constant_step_bound_at_the_budget(
    optimizer: str, judged_at: float, budget: float
) -> None:
    # L(eta, t) = D^2 / (2 eta t) + eta G^2 / 2 is least at eta*(t) = D / (G sqrt t): the
    # factor carries eta*(judged_at) to eta*(budget), for the adaptive optimizers only.
    factor = horizon_factor(OptimizerSpec(optimizer), Recipe(), judged_at, budget)
    if optimizer not in ADAPTIVE or judged_at >= budget:
        assert factor == 1.0
        return
    d, g = 3.0, 0.7

    def best(t: float) -> float:
        return d / (g * math.sqrt(t))

    assert best(judged_at) * factor == pytest.approx(best(budget), rel=1e-9)
    assert 0 < factor < 1


# what the race could not tell apart


def raced(
    lr: float, curve: list[tuple[float, float]], std: float, status: str = "done"
) -> RacedCandidate:
    return RacedCandidate(
        lr, ("test",), curve[-1][1], std, curve[-1][0], status, tuple(curve), None
    )


def test_as_good_compares_each_candidate_with_the_winner_where_it_was_left_behind() -> None:
    winner = raced(0.1, [(1.0, 0.80), (3.0, 0.95)], 0.01)
    # Left behind at epoch 1 at 0.79: within 2 x hypot(0.01, 0.01) = 0.028 of the winner's
    # 0.80 there, though far below its 0.95 at the end.
    early = raced(0.02, [(1.0, 0.79)], 0.01)
    behind = raced(0.4, [(1.0, 0.70)], 0.01)  # 0.10 behind at epoch 1
    close = raced(0.2, [(1.0, 0.81), (3.0, 0.94)], 0.01)
    unknown = raced(0.01, [(1.0, 0.80)], math.nan)
    diverged = raced(0.8, [(1.0, 0.80)], 0.01, "diverged")
    pool = [unknown, early, winner, close, behind, diverged]
    assert as_good_as_winner(pool, 0.1) == (0.02, 0.2)
    assert as_good_as_winner([winner, behind], 0.1) == (0.1, 0.1)
    assert cautions(pool, 0.1) == ()  # an inner winner, however wide its ties


@given(st.floats(1e-4, 1.0), st.integers(2, 6), st.integers(0, 5))
def test_a_winner_at_an_end_of_the_candidates_is_said_so(first: float, count: int, at: int) -> None:
    lrs = [first * 2.0**k for k in range(count)]
    winner = lrs[min(at, count - 1)]
    # Every candidate clearly behind the winner, so only the end can be said.
    pool = [raced(lr, [(1.0, 0.9 if lr == winner else 0.5)], 0.001) for lr in lrs]
    said = cautions(pool, winner)
    assert as_good_as_winner(pool, winner) == (winner, winner)
    if winner == lrs[0]:
        assert len(said) == 1 and "the smallest lr it raced" in said[0]
    elif winner == lrs[-1]:
        assert len(said) == 1 and "the largest lr it raced" in said[0]
    else:
        assert said == ()
    tied = [raced(lr, [(1.0, 0.9)], 0.001) for lr in lrs]  # all within noise of each other
    assert as_good_as_winner(tied, winner) == (lrs[0], lrs[-1])


@given(
    st.integers(3, 6),
    st.integers(0, 5),
    st.booleans(),
    st.booleans(),
)
def test_the_label_is_confident_only_for_sgd_with_an_inner_winner_that_finished(
    count: int, at: int, sgd: bool, short: bool
) -> None:
    lrs = [0.01 * 2.0**k for k in range(count)]
    winner = lrs[min(at, count - 1)]
    reached = 1.0 if short else 3.0  # the last rung is at 3 epochs
    pool = [raced(lr, [(reached, 0.9 if lr == winner else 0.5)], 0.001) for lr in lrs]
    said = confidence(pool, winner, 3.0, sgd, "adam")
    inner = winner not in (lrs[0], lrs[-1])
    assert (said.label == "confident") == (sgd and inner and not short)
    assert said.reasons == () if said.label == "confident" else len(said.reasons) >= 1
    assert any("with adam the best lr keeps moving" in r for r in said.reasons) == (not sgd)
    assert set(cautions(pool, winner, 3.0)) <= set(said.reasons)  # the cautions are reasons


@pytest.mark.parametrize(
    ("spec", "sgd"),
    [
        (OptimizerSpec("sgd"), True),
        (OptimizerSpec("momentum"), True),
        (OptimizerSpec("torch.optim:SGD"), True),
        (OptimizerSpec("adam"), False),
        (OptimizerSpec("torch.optim:RAdam"), False),
        (OptimizerSpec(factory=lambda p, lr: torch.optim.SGD(p, lr=lr)), False),
    ],
)
def test_which_optimizers_count_as_sgd_for_the_label(spec: OptimizerSpec, sgd: bool) -> None:
    assert spec.sgd == sgd


def test_with_adam_the_advice_is_the_winner_scaled_to_the_budget() -> None:
    train, val = problem()
    found = advise(make_model, train, val, settings(engine="sequential", optimizer="adam"))
    last = [
        c for c in found.candidates if c.epochs_run == max(x.epochs_run for x in found.candidates)
    ]
    winner = next(c for c in found.candidates if c.lr == found.raced_lr)
    assert winner in last and winner.value == max(c.value for c in last)
    assert max(c.epochs_run for c in found.candidates) == pytest.approx(1.5)
    assert found.horizon_factor == pytest.approx(math.sqrt(1.5 / 3.0))
    assert found.lr == pytest.approx(found.raced_lr * math.sqrt(0.5))
    document = found.to_json()
    assert document["raced_lr"] == found.raced_lr and document["lr"] == found.lr
    assert found.mark(found.raced_lr) == "won" and found.mark(found.runner_up or 0.0) == ""
    note = found.horizon_note()
    assert note is not None and f"{found.raced_lr:.4g}, x 0.71" in note
    assert "judged at 1.5 of 3 epochs" in note
    low, high = found.as_good
    assert low <= found.lr <= high and document["as_good"] == [low, high]
    assert document["cautions"] == list(found.cautions)


def test_candidates_too_small_for_a_plateau_are_extended_upwards() -> None:
    # SGD at 1e-5 leaves the majority-class plateau no sooner than at 4e-5: every candidate
    # ties in accuracy, so the race adds larger ones (the loss breaks the tie towards them).
    lrs = [1e-5, 2e-5, 4e-5]
    ran, best = race_of("sgd", lrs, extensions=2)
    assert ran == [*lrs, 4e-5 * EDGE_STEP, 4e-5 * EDGE_STEP**2]
    assert best == ran[-1]
    assert race_of("sgd", lrs, extensions=0)[0] == lrs


def test_candidates_too_large_are_extended_downwards_until_the_leader_is_inside() -> None:
    # SGD with momentum at lr 1 to 4 on this problem: the smallest leads, clearly, so smaller
    # ones join, one at a time, until one inside the range leads; here after three of four.
    ran, best = race_of("momentum", [1.0, 2.0, 4.0], extensions=4)
    assert ran == [1.0 / EDGE_STEP**k for k in range(3, 0, -1)] + [1.0, 2.0, 4.0]
    assert ran[0] < best < 1.0


def test_candidates_around_the_best_are_not_extended() -> None:
    ran, _ = race_of("sgd", [0.1, 0.4, 1.6], extensions=4)
    assert ran == [0.1, 0.4, 1.6]


def test_a_stacked_race_equals_the_sequential_one() -> None:
    train, val = problem()
    seq = advise(make_model, train, val, settings(engine="sequential", optimizer="momentum"))
    vec = advise(make_model, train, val, settings(engine="vectorized", optimizer="momentum"))
    assert vec.engine == "vectorized" and seq.engine == "sequential"
    assert vec.lr == seq.lr
    assert [c.lr for c in vec.candidates] == [c.lr for c in seq.candidates]
    for a, b in zip(vec.candidates, seq.candidates, strict=True):
        assert a.epochs_run == b.epochs_run
        assert a.value == pytest.approx(b.value, abs=1e-6)


def test_the_same_seed_gives_the_same_advice_in_one_process_or_two() -> None:
    train, val = problem()
    runs = [
        advise(make_model, train, val, settings(engine="sequential", optimizer="adam", workers=w))
        for w in (1, 1, 2)
    ]
    assert len({r.lr for r in runs}) == 1
    assert len({tuple(c.value for c in r.candidates) for r in runs}) == 1


def test_a_regression_is_judged_by_its_loss_and_cannot_be_judged_by_accuracy() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(600, 1, generator=g) * 4 - 2
    data = TensorData(x, torch.sin(2 * x))
    train, val = data.split(1 / 6)

    def tiny(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(1, 8), nn.Sigmoid(), nn.Linear(8, 1))

    found = advise(tiny, train, val, settings(engine="sequential"), loss_fn=nn.MSELoss())
    assert found.metric == "loss"
    assert found.value == min(c.value for c in found.candidates if c.epochs_run == 1.5)
    with pytest.raises(LrkitValueError, match="metric accuracy needs integer class labels"):
        advise(tiny, train, val, settings(metric="accuracy"), loss_fn=nn.MSELoss())


def test_a_model_that_cannot_be_copied_is_refused() -> None:
    train, val = problem()

    class Stubborn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(8, 2)

        def __deepcopy__(self, memo: object) -> Stubborn:
            raise TypeError("no copies")

    with pytest.raises(LrkitValueError, match=r"cannot be copied .*give a factory"):
        advise(Stubborn(), train, val, settings())


class NanOnceSwitched:
    """Cross-entropy, nan in training (never in evaluation) once ``switch`` has been
    called: the race flips it from its progress, so that the runs it stands for stop
    finishing from a chosen point of the race on."""

    def __init__(self) -> None:
        self.failing = False

    def switch(self) -> None:
        self.failing = True

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.cross_entropy(output, target)
        return loss * math.nan if self.failing and torch.is_grad_enabled() else loss


def test_where_every_survivor_diverges_the_advice_is_the_best_candidate_that_finished() -> None:
    train, val = problem()
    loss = NanOnceSwitched()
    first_rung = race_plan(3.0, 6)[0].epochs

    def on_check(lr: float, point: object, done: float) -> None:
        if done > first_rung + 1e-9:  # the last rung: every survivor diverges
            loss.switch()

    found = advise(
        make_model, train, val, settings(engine="sequential"), loss_fn=loss, on_check=on_check
    )
    chosen = next(c for c in found.candidates if c.lr == found.raced_lr)
    finished = [c for c in found.candidates if c.status == "done"]
    assert {c.status for c in found.candidates} == {"done", "diverged"}
    assert chosen.status == "done" and chosen.epochs_run == pytest.approx(first_rung)
    assert chosen.value == max(c.value for c in finished)
    assert found.decided_at == pytest.approx(first_rung)
    assert found.value == chosen.value > 0.5
    assert any("no candidate that went on to 1.5 epochs finished" in c for c in found.cautions)


def test_a_race_where_no_candidate_finished_advises_nothing() -> None:
    train, val = problem()
    loss = NanOnceSwitched()
    with pytest.raises(RaceFailed, match=r"no candidate of the race finished \(lr .* diverged"):
        advise(
            make_model,
            train,
            val,
            settings(engine="sequential"),
            loss_fn=loss,
            on_check=lambda lr, point, done: loss.switch(),
        )


def test_the_race_ranks_finished_candidates_first_and_the_furthest_of_them_first() -> None:
    rs = RaceSetup(None, None, 32, "accuracy", OptimizerSpec("sgd", 0.0), 0)  # type: ignore[arg-type]

    def outcome(status: str, epochs: list[float], accuracy: float) -> TrialOutcome:
        points = tuple(CurvePoint(i, e, 0.5, 0.5, accuracy) for i, e in enumerate(epochs))
        return TrialOutcome(status, None, points, None, 1.0)

    diverged_far = outcome("diverged", [0.0, 0.5, 1.0], 0.99)
    failed = outcome("failed", [0.0, 0.5], 0.99)
    done_early = outcome("done", [0.0, 0.5], 0.80)
    done_early_better = outcome("done", [0.0, 0.5], 0.85)
    done_far = outcome("done", [0.0, 0.5, 1.5], 0.70)
    pool = [diverged_far, failed, done_early, done_early_better, done_far]
    order = sorted(pool, key=lambda o: result_rank(o, rs))
    assert order[:3] == [done_far, done_early_better, done_early]
    assert set(map(id, order[3:])) == {id(diverged_far), id(failed)}


# the CLI

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(1, 8), nn.Sigmoid(), nn.Linear(8, 1))

    def make_data():
        g = torch.Generator().manual_seed(1)
        x = torch.rand(600, 1, generator=g) * 4 - 2
        return x, torch.sin(2 * x)
    """
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    (tmp_path / "advisemodels.py").write_text(USER_MODULE)
    return tmp_path


@pytest.mark.slow  # the figure and the report: in make test, not test-fast
def test_cli_advise_writes_the_advice_its_figure_and_report(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["advise", "--epochs", "1", "--batch-size", "32", "--workers", "1"]
    out_files = ["--json", "a.json", "--plot", "a.png", "--report", "a.html"]
    code, out, err = run([*args, *out_files], capsys)
    assert code == 0, err
    assert "advised learning rate:" in out and "<- advised" in out
    document = json.loads((workdir / "a.json").read_text())
    assert set(document) >= {"lr", "batch_size", "metric", "candidates", "seconds"}
    assert document["batch_size"] == 32 and document["metric"] == "accuracy"
    for candidate in document["candidates"]:
        assert set(candidate) >= {"lr", "batch_size", "value", "value_std", "epochs_run"}
    assert document["lr"] in [c["lr"] for c in document["candidates"]]
    range_test = document["cost"]["range_test"]  # 160 steps of 172 in the budget
    assert range_test == pytest.approx(160 / math.ceil(5500 / 32))
    assert f"the range test alone took {range_test:.2f} (its least, 20 lrs of 8 steps" in out
    assert (workdir / "a.png").stat().st_size > 0
    assert "Advice (this run)" in (workdir / "a.html").read_text()


def test_cli_advise_on_a_users_regression_judges_the_loss(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = ["--model", "advisemodels:make_model", "--data", "advisemodels:make_data"]
    args = ["advise", *user, "--loss", "torch.nn:MSELoss", "--epochs", "2", "--batch-size", "16"]
    code, out, err = run([*args, "--optimizer", "adamw", "--json", "a.json"], capsys)
    assert code == 0, err
    document = json.loads((workdir / "a.json").read_text())
    assert document["metric"] == "loss"
    assert document["lr"] == pytest.approx(document["raced_lr"] * math.sqrt(0.5))
    assert document["raced_lr"] in [c["lr"] for c in document["candidates"]]
    assert "that is the race's winner" in out and "<- won" in out
    assert "one trial a process" in err  # adamw does not stack
    assert document["confidence"]["label"] == "unsure" and "confidence: unsure (with adamw" in out
    assert document["recipe"] == "constant" and document["finished"] is None
    range_test = document["cost"]["range_test"]
    assert ("the range test alone took" in out) == (range_test > 0.5)


def test_cli_advise_finishes_a_scheduled_run_and_saves_the_model(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = ["--model", "advisemodels:make_model", "--data", "advisemodels:make_data"]
    recipe = ["--schedule", "cosine", "--warmup", "0.1", "--finish", "--save-model", "m.pt"]
    args = ["advise", *user, "--loss", "torch.nn:MSELoss", "--epochs", "2", "--batch-size", "16"]
    code, out, err = run([*args, *recipe, "--json", "a.json"], capsys)
    assert code == 0, err
    document = json.loads((workdir / "a.json").read_text())
    assert document["recipe"] == "cosine after a 10% warm-up"
    assert document["finished"]["status"] == "done" and document["finished"]["lr"] == document["lr"]
    assert "trained to 2 epochs at" in out and "beyond the one run you would have made" in out
    saved = torch.load(workdir / "m.pt")
    assert set(saved) == {"model", "optimizer"}
    model = nn.Sequential(nn.Linear(1, 8), nn.Sigmoid(), nn.Linear(8, 1))
    model.load_state_dict(saved["model"])  # the user's model, trained


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be a number in (0, 100000], got 0.0"),
        (["--epochs", "-3"], "--epochs must be a number in (0, 100000]"),
        (["--candidates", "1"], "--candidates must be an integer in [2, 16], got 1"),
        (["--metric", "f1"], "--metric must be one of auto, accuracy, loss, got 'f1'"),
        (["--optimizer", "lion"], "--optimizer must be one of sgd, momentum, adam, adamw"),
        (["--schedule", "nope"], "--schedule 'nope': unknown schedule 'nope'; choose one of"),
        (["--schedule", "cosine:bogus=1"], "cosine takes max_iter, min_lr, not bogus"),
        (["--schedule", "cosine:base_lr=1"], "base_lr comes from the candidate's lr"),
        (["--warmup", "1"], "--warmup must be a number in [0, 1), got 1.0"),
        (["--optimizer", "torch.nn:Linear"], "Linear is not a torch.optim.Optimizer subclass"),
        (["--optimizer", "torch.optim:Lion"], "--optimizer 'torch.optim:Lion': torch.optim has"),
        (["--optimizer-args", "{bad"], "--optimizer-args is not valid JSON"),
        (
            ["--optimizer", "adam", "--optimizer-args", '{"betas": [2, 0.9]}'],
            "--optimizer-args: --optimizer adam refuses them: Invalid beta parameter",
        ),
        (["--finish"], "--finish trains the advised lr for --epochs at one batch size"),
        (["--target", "0.9", "--finish"], "--target and --time give no length to train to"),
        (["--save-model", "m.pt"], "--save-model writes the model --finish trains: add --finish"),
        (
            ["--batch-size", "32", "--finish", "--save-model", "file.txt/m.pt"],
            "--save-model file.txt/m.pt: file.txt is a file",
        ),
        (["--batch-size", "100000"], "--batch-size must be at most the number of training"),
        (["--engine", "fast"], "--engine must be one of auto, sequential, vectorized, ray"),
        (["--json", "file.txt/a.json"], "--json file.txt/a.json: file.txt is a file"),
        (
            [
                "--model",
                "advisemodels:make_model",
                "--data",
                "advisemodels:make_data",
                "--loss",
                "torch.nn:MSELoss",
                "--metric",
                "accuracy",
            ],
            "--metric accuracy needs integer class labels and an output of class scores "
            "(batch, classes), got float targets: use --metric loss",
        ),
    ],
)
def test_cli_advise_bad_input_exits_2_in_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (workdir / "file.txt").write_text("in the way")
    code, out, err = run(["advise", "--epochs", "1", *args], capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and out == "", err
    assert len(errors) == 1 and "Traceback" not in err
    assert message in errors[0]


# the user's recipe and the finished run


def test_the_race_trains_the_recipe_and_finish_goes_on_to_the_same_model_as_one_run() -> None:
    # Every candidate trains under the warm-up and cosine over the budget, the winner's peak
    # is the advice, and --finish trains it on from the race's checkpoint: its model is the
    # very one a single run of the recipe from the start makes (no dropout: bitwise).
    train, val = problem()
    found = advise(
        make_model,
        train,
        val,
        settings(engine="sequential", schedule="cosine", warmup=0.1, finish=True),
    )
    run = found.finished
    assert run is not None and run.status == "done" and run.state is not None
    assert run.lr == found.lr == found.raced_lr and found.horizon_factor == 1.0
    assert run.resumed_at == found.decided_at == 1.5 and run.epochs_trained == 1.5
    assert found.recipe == "cosine after a 10% warm-up"
    steps = math.ceil(3.0 * math.ceil(len(train) / 32))
    model = make_model(0)
    plan = TrialPlan(
        lr=run.lr,
        batch_size=32,
        epochs=3.0,
        eval_every=0.75,
        seed=0,
        schedule=Recipe("cosine", 0.1).build(run.lr, steps),
        keep_checkpoint=True,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=run.lr)
    alone = train_trial(model, optimizer, nn.CrossEntropyLoss(), train, val, None, plan)
    assert alone.checkpoint is not None
    for name, tensor in alone.checkpoint.model.items():
        assert torch.equal(tensor, run.state.model[name]), name
    assert run.value == alone.points[-1].val_accuracy
    # The cost, both ways: the range test, the race and the second half of the winner.
    trained = found.range_test_budgets + (found.trial_epochs + 1.5) / 3.0
    assert found.budgets_trained == pytest.approx(trained)
    assert found.beyond_one_run == pytest.approx(trained - 1.0)
    document = found.to_json()
    assert document["recipe"] == found.recipe and document["finished"]["resumed_at"] == 1.5
    assert document["cost"]["beyond_one_run"] == pytest.approx(trained - 1.0)


def test_keep_final_hands_back_the_last_rungs_survivors_checkpoints_only() -> None:
    train, val = problem()
    setup = TrainingSetup(make_model, nn.CrossEntropyLoss(), train, val, None, torch.device("cpu"))
    engine = make_engine(EngineChoice("sequential"), None)
    rs = RaceSetup(setup, engine, 32, "accuracy", OptimizerSpec("sgd"), 0)
    candidates = [Candidate(lr, ("test",)) for lr in (0.05, 0.1, 0.2, 0.4)]
    plan = race_plan(3.0, 4)
    raced, _, kept = race(candidates, plan, rs, None, 0, keep_final=True)
    survivors = {c.lr for c in raced if c.epochs_run == plan[-1].epochs}
    assert set(kept) == survivors and len(survivors) == plan[0].keep
    assert all(point.position.progress == plan[-1].epochs for point in kept.values())


def test_the_python_api_takes_an_optimizer_factory_and_a_schedule_factory() -> None:
    train, val = problem()
    lengths: list[int] = []

    def linear_decay(peak: float, iterations: int) -> Callable[[int], float]:
        lengths.append(iterations)
        return lambda t: peak * max(0.0, 1 - t / iterations)

    found = advise(
        make_model,
        train,
        val,
        settings(engine="auto", warmup=0.05),
        optimizer=lambda params, lr: torch.optim.NAdam(params, lr=lr),
        schedule=linear_decay,
    )
    steps = math.ceil(3.0 * math.ceil(len(train) / 32))
    assert set(lengths[1:]) == {steps - round(0.05 * steps)}  # the first: the recipe's check
    assert found.engine == "sequential" and found.optimizer.startswith("a factory")
    assert found.recipe == "a schedule of the caller's after a 5% warm-up"
    assert found.horizon_factor == 1.0 and found.lr == found.raced_lr
