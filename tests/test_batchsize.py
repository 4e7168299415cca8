"""The batch size for a budget: McCandlish et al.'s model against closed forms, the ceiling
probe (bitwise state restore, the first out-of-memory stops it), the memory estimate, the
step times, the driver end to end, and the CLI with its bad budgets."""

from __future__ import annotations

import json
import math
import random
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from cli_run import run
from lrkit.advise.result import RacedCandidate
from lrkit.advise.settings import AdviseSettings
from lrkit.batchsize import driver
from lrkit.batchsize.ceiling import (
    estimate_ceiling,
    find_ceiling,
    probe_ceiling,
    saved_bytes,
    search_ceiling,
)
from lrkit.batchsize.crossing import PROJECTION_REACH, first_reached, projected_crossing
from lrkit.batchsize.driver import advise_batch_size, candidate_sizes
from lrkit.batchsize.judging import soonest, soonest_projected
from lrkit.batchsize.model import (
    choose,
    epochs_progress,
    examples_factor,
    neighbours,
    predict,
    steps_factor,
)
from lrkit.batchsize.settings import BatchSettings, CeilingSettings
from lrkit.batchsize.throughput import measure_step_times
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.noise.tracking import NoiseRun, track_noise_scale
from lrkit.training.optimizers import make_optimizer

# the model


@given(st.floats(0.5, 1e5), st.floats(0.5, 1e5))
def test_steps_and_examples_trade_off_on_mccandlish_s_hyperbola(b: float, noise: float) -> None:
    # (S / S_min - 1)(E / E_min - 1) = 1 (McCandlish et al. 2018, eq. 2.11), and at
    # B = B_noise both are twice their least.
    s, e = steps_factor(b, noise), examples_factor(b, noise)
    assert (s - 1) * (e - 1) == pytest.approx(1.0, rel=1e-9)
    assert steps_factor(noise, noise) == examples_factor(noise, noise) == 2.0
    # Examples spent E = B S: with S = S_min (1 + Bn/B), E / (S_min Bn) = 1 + B/Bn.
    assert b * s / noise == pytest.approx(e, rel=1e-9)


def powers(smallest: int, count: int) -> list[int]:
    return [smallest * 2**k for k in range(count)]


@given(
    st.floats(1e-4, 1e-2),  # a: the per-step overhead
    st.floats(1e-7, 1e-4),  # c: the time per example
    st.floats(1.0, 5000.0),  # B_noise
    st.integers(3, 10),
)
def test_the_time_choice_is_the_closed_form_optimum_among_the_candidates(
    a: float, c: float, noise: float, count: int
) -> None:
    # t(B) = a + c B makes T(B) ~ (a + c B)(1 + Bn / B), least at B* = sqrt(a Bn / c); the
    # choice is the candidate of least T, one of the two powers of 2 around B* (or an end).
    sizes = powers(8, count)
    predictions = predict({b: a + c * b for b in sizes}, noise)

    def cost(b: float) -> float:
        return (a + c * b) * (1 + noise / b)

    chosen = choose(predictions, "time")
    assert chosen == choose(predictions, "target")
    assert cost(chosen) == pytest.approx(min(cost(b) for b in sizes), rel=1e-12)
    star = math.sqrt(a * noise / c)
    below = [b for b in sizes if b <= star]
    above = [b for b in sizes if b >= star]
    assert chosen in {max(below, default=sizes[0]), min(above, default=sizes[-1])}
    assert min(p.relative_time for p in predictions) == pytest.approx(1.0)
    # Epochs: the progress N E / (B + Bn) only falls with B, so the smallest candidate.
    assert choose(predictions, "epochs") == sizes[0]
    progress = [p.relative_progress for p in predictions]
    assert progress == sorted(progress, reverse=True) and progress[0] == 1.0
    for p in predictions:
        ratio = epochs_progress(p.batch_size, noise, 1e6) / epochs_progress(8, noise, 1e6)
        assert p.relative_progress == pytest.approx(ratio)


def test_sizes_that_do_not_fit_are_never_chosen() -> None:
    sizes = powers(8, 6)
    times = {b: 1e-3 for b in sizes}  # flat step time: the largest is best for time
    fits = {b: b <= 64 for b in sizes}
    predictions = predict(times, 100.0, fits)
    assert choose(predictions, "time") == 64
    assert [p.fits for p in predictions] == [True] * 4 + [False] * 2
    assert all(math.isinf(p.relative_time) for p in predictions if not p.fits)
    assert neighbours(64, predictions) == [16, 32, 64]
    with pytest.raises(ValueError, match="no candidate batch size fits"):
        choose(predict(times, 100.0, dict.fromkeys(sizes, False)), "epochs")
    with pytest.raises(ValueError, match="noise_scale"):
        predict(times, 0.0)


def test_neighbours_are_half_and_double_where_they_fit() -> None:
    predictions = predict({b: 1e-3 for b in powers(8, 6)}, 50.0)
    assert neighbours(32, predictions) == [16, 32, 64]
    assert neighbours(8, predictions) == [8, 16, 32]  # no 4: the next two up
    assert neighbours(256, predictions) == [64, 128, 256]
    assert neighbours(8, predict({8: 1e-3}, 50.0)) == [8]


def test_candidate_sizes_double_within_the_cap_and_an_eighth_of_the_data() -> None:
    assert candidate_sizes(8, 1000, None) == [8, 16, 32, 64]  # 1000 // 8 = 125
    assert candidate_sizes(8, 100_000, 100) == [8, 16, 32, 64]
    assert candidate_sizes(5, 1000, None) == [5, 10, 20, 40, 80]
    assert candidate_sizes(200, 1000, None) == []


def test_the_target_is_met_where_the_curve_crosses_it() -> None:
    curve = ((1.0, 0.80), (2.0, 0.90), (3.0, 0.96), (4.0, 0.97))
    assert first_reached(curve, 0.95, higher=True) == pytest.approx(2.0 + (0.05 / 0.06))
    assert first_reached(curve, 0.80, higher=True) == 1.0  # met at the first check
    assert first_reached(curve, 0.99, higher=True) is None
    losses = ((1.0, 0.5), (2.0, 0.3), (3.0, 0.2))
    assert first_reached(losses, 0.25, higher=False) == pytest.approx(2.5)


@given(
    a=st.floats(0.3, 0.8),
    b=st.floats(0.01, 0.2),
    last=st.floats(1.0, 10.0),
    beyond=st.floats(1.05, 3.0),
)
def test_the_projection_of_a_log_linear_curve_is_its_closed_form_crossing(
    a: float, b: float, last: float, beyond: float
) -> None:
    """On v(e) = a + b ln e checked up to ``last``, the target v(beyond x last) is projected
    at beyond x last, within the reach (twice the curve's length) and the limit, else None;
    the same curve as a loss (mirrored) is projected alike."""
    epochs = [last * k / 8 for k in range(1, 9)]
    curve = [(e, a + b * math.log(e)) for e in epochs]
    target = a + b * math.log(beyond * last)
    expected = beyond * last if beyond <= PROJECTION_REACH else None
    got = projected_crossing(curve, target, higher=True, limit=100.0)
    assert got == (None if expected is None else pytest.approx(expected, rel=1e-9))
    losses = [(e, 1 - v) for e, v in curve]
    mirrored = projected_crossing(losses, 1 - target, higher=False, limit=100.0)
    assert mirrored == got or mirrored == pytest.approx(got, rel=1e-9)
    # The user's budget bounds it too.
    assert projected_crossing(curve, target, higher=True, limit=beyond * last * 0.99) is None


def test_a_projection_needs_an_improving_trend_and_checks_to_fit() -> None:
    flat = [(e, 0.9) for e in (1.0, 2.0, 3.0, 4.0)]
    assert projected_crossing(flat, 0.95, higher=True, limit=10.0) is None
    falling = [(e, 0.9 - 0.01 * e) for e in (1.0, 2.0, 3.0, 4.0)]
    assert projected_crossing(falling, 0.95, higher=True, limit=10.0) is None
    short = [(1.0, 0.5), (2.0, 0.7), (4.0, 0.9)]  # two checks in the later half
    assert projected_crossing(short, 0.95, higher=True, limit=10.0) is None
    # A trend already past the target (a noisy check below it): no earlier than the last.
    noisy = [(2.0, 0.90), (3.0, 0.96), (4.0, 0.94)]
    assert projected_crossing(noisy, 0.945, higher=True, limit=10.0) == 4.0


def test_only_the_candidates_that_ran_to_the_end_are_projected() -> None:
    def raced(lr: float, curve: list[tuple[float, float]]) -> RacedCandidate:
        return RacedCandidate(lr, ("test",), curve[-1][1], 0.02, curve[-1][0], "done", tuple(curve))

    def rising(e: float, rate: float) -> float:
        return 0.7 + rate * math.log(e)

    # Left behind at 1 epoch, steep: its trend would cross first, but it is not projected.
    steep = raced(1.0, [(e, rising(e, 0.2)) for e in (0.25, 0.5, 0.75, 1.0)])
    slow = raced(0.1, [(e, rising(e, 0.03)) for e in (0.5, 1.0, 1.5, 2.0)])
    fast = raced(0.3, [(e, rising(e, 0.05)) for e in (0.5, 1.0, 1.5, 2.0)])
    target = rising(3.0, 0.05)
    lr, epoch = soonest_projected((steep, slow, fast), target, True, limit=4.0) or (0, 0)
    assert lr == 0.3 and epoch == pytest.approx(3.0)
    assert soonest_projected((steep, slow, fast), target, True, limit=2.9) is None
    # Far from the target (0.020 short, more than 2 standard errors of 0.005): not projected.
    sure = RacedCandidate(0.3, ("test",), fast.value, 0.005, 2.0, "done", fast.curve)
    assert soonest_projected((steep, slow, sure), target, True, limit=4.0) is None


def test_the_soonest_candidate_is_the_first_to_reach_the_target_wherever_it_stopped() -> None:
    def raced(lr: float, curve: list[tuple[float, float]], status: str = "done") -> RacedCandidate:
        return RacedCandidate(lr, ("test",), curve[-1][1], 0.01, curve[-1][0], status, tuple(curve))

    winner = raced(0.1, [(1.0, 0.80), (2.0, 0.90), (3.0, 0.96)])  # best at the end
    early = raced(0.4, [(0.5, 0.90), (1.0, 0.93)])  # left behind at epoch 1, there first
    diverged = raced(0.8, [(0.5, 0.95)], "diverged")
    assert soonest((winner, early, diverged), 0.92, higher=True) == (
        0.4,
        pytest.approx(0.5 + 0.5 * (0.02 / 0.03)),
    )
    assert soonest((winner,), 0.92, higher=True) == (0.1, pytest.approx(2.0 + 0.02 / 0.06))
    assert soonest((winner, early), 0.99, higher=True) is None
    tie = raced(0.2, [(0.5, 0.90), (1.0, 0.93)])
    assert soonest((early, tie), 0.92, higher=True)[0] == 0.2  # type: ignore[index]


# the ceiling


@given(st.integers(1, 5000), st.integers(1, 64), st.integers(1, 8000))
def test_the_search_finds_the_largest_size_that_fits_and_stops_at_the_first_failure(
    largest: int, start: int, limit: int
) -> None:
    if limit < start:
        limit, start = start, limit
    found = search_ceiling(lambda b: b <= largest, start, limit)
    expected = min(largest, limit) if start <= largest else 0
    assert found.largest == expected
    tried = [b for b, _ in found.tried]
    failures = [b for b, ok in found.tried if not ok]
    if failures:  # nothing at or above the first failure is tried after it
        first = tried.index(failures[0])
        assert all(b < failures[0] for b in tried[first + 1 :])
    assert all(ok == (b <= largest) for b, ok in found.tried)
    # doublings, then a bisection of the gap between the last fit and the first failure
    assert len(tried) <= math.ceil(math.log2(limit / start)) + 2 + math.ceil(math.log2(limit + 1))
    assert len(set(tried)) == len(tried)


class RunsOutAt(nn.Module):
    """An MLP on a fake device that runs out of memory at batches above ``most``."""

    def __init__(self, most: int) -> None:
        super().__init__()
        self.most = most
        self.seen: list[int] = []
        self.net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[0])
        if x.shape[0] > self.most:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


def data(n: int = 400) -> TensorData:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 6, generator=g)
    return TensorData(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_the_probe_stops_at_the_first_out_of_memory_and_restores_everything_bitwise(
    optimizer: str,
) -> None:
    torch.manual_seed(0)
    model = RunsOutAt(most=100)
    opt = make_optimizer(optimizer, model, 0.1)
    train = data()
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(2):  # an optimizer with state, as a user's mid-training
        opt.zero_grad()
        loss_fn(model(train.x[:16]), train.y[:16]).backward()
        opt.step()
    model.seen.clear()
    before_params = {k: v.clone() for k, v in model.state_dict().items()}
    before_opt = {
        k: {n: t.clone() for n, t in s.items()} for k, s in opt.state_dict()["state"].items()
    }
    random.seed(5)
    np.random.seed(5)  # noqa: NPY002
    torch.manual_seed(5)
    rng = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())  # noqa: NPY002

    found = probe_ceiling(model, opt, loss_fn, train, start=8, limit=300)

    assert found.batch_size == 100 and found.method == "probe"
    assert found.tried[:5] == ((8, True), (16, True), (32, True), (64, True), (128, False))
    first_failure = found.tried.index((128, False))
    assert all(b < 128 for b, _ in found.tried[first_failure + 1 :])
    assert max(model.seen) == 128  # nothing past the first failure ran
    for key, value in model.state_dict().items():
        assert torch.equal(value, before_params[key]), key
    for key, state in opt.state_dict()["state"].items():
        for name, tensor in state.items():
            assert torch.equal(tensor, before_opt[key][name]), (key, name)
    assert random.getstate() == rng[0]
    assert np.array_equal(np.random.get_state()[1], rng[1])  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), rng[2])
    # Auto probes only on CUDA; asked for, it probes here too.
    asked = find_ceiling(model, opt, optimizer, loss_fn, train, CeilingSettings("probe", limit=300))
    assert asked.batch_size == 100


def test_an_error_that_is_not_out_of_memory_is_raised_not_taken_for_the_ceiling() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 20:
                raise RuntimeError("shape mismatch")
            return self.layer(x)

    model = Broken()
    with pytest.raises(RuntimeError, match="shape mismatch"):
        probe_ceiling(model, make_optimizer("sgd", model, 0.1), nn.CrossEntropyLoss(), data())


def test_the_memory_estimate_is_linear_in_the_batch_and_closes_its_own_books() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.Sigmoid(), nn.Linear(32, 3))
    train = data(2000)
    loss_fn = nn.CrossEntropyLoss()
    # Fresh batches, as training gathers them (a slice would share the whole set's storage).
    kept = [
        saved_bytes(model, loss_fn, train.x[:b].clone(), train.y[:b].clone()) for b in (8, 64, 256)
    ]
    slope = (kept[1] - kept[0]) / 56
    assert slope > 0 and kept[2] - kept[1] == pytest.approx(slope * 192)  # linear in B
    memory = 5_000_000
    found = estimate_ceiling(model, loss_fn, train, "adam", memory=memory)
    assert found.method == "memory" and found.memory_bytes == memory
    assert found.example_bytes == pytest.approx(2 * slope + 6 * 4)
    expected = math.floor((memory - (found.fixed_bytes or 0)) / found.example_bytes)
    assert found.batch_size == min(len(train), expected)
    assert estimate_ceiling(model, loss_fn, train, "adam", memory=1000).batch_size == 0
    assert (
        estimate_ceiling(model, loss_fn, train, "sgd", memory=10**12, limit=300).batch_size == 300
    )


def test_step_times_are_measured_for_every_size_and_leave_the_model_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[int] = []
    times = measure_step_times(
        model,
        nn.CrossEntropyLoss(),
        data(),
        [8, 32, 128],
        lambda net: make_optimizer("adam", net, 1e-3),
        on_size=lambda s: seen.append(s.batch_size),
    )
    assert [t.batch_size for t in times] == seen == [8, 32, 128]
    assert all(t.seconds > 0 and t.steps >= 5 for t in times)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# the driver, end to end


def problem(n: int = 1200) -> tuple[TensorData, TensorData]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long()
    cut = n * 5 // 6
    return TensorData(x[:cut], y[:cut]), TensorData(x[cut:], y[cut:])


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))


def race(**changes: object) -> AdviseSettings:
    return AdviseSettings(**{"epochs": 2.0, "workers": 1, "candidates": 4, **changes})  # type: ignore[arg-type]


def test_epochs_mode_races_the_predicted_size_and_its_neighbours() -> None:
    train, val = problem()
    settings = BatchSettings(mode="epochs", max_batch_size=64, race=race())
    found = advise_batch_size(make_model, train, val, settings)
    assert [p.batch_size for p in found.predictions] == [8, 16, 32, 64]
    assert found.predicted == 8  # the model's epochs choice: the smallest
    assert [r.batch_size for r in found.races] == [8, 16, 32]
    assert found.batch_size in (8, 16, 32) and found.lr == found.chosen.advice.lr
    assert all(r.epochs == 2.0 and r.advice.batch_size == r.batch_size for r in found.races)
    assert found.noise.b_noise > 0 and found.noise.batch_size == 32
    assert found.ceiling.method == "memory" and found.ceiling.batch_size >= 64
    best = max(found.races, key=lambda r: r.value)
    # The largest within noise of the best: never a smaller batch than the best's.
    assert found.batch_size >= best.batch_size
    document = json.loads(json.dumps(found.to_json()))
    assert document["batch_size"] == found.batch_size and document["lr"] == found.lr
    assert document["mode"] == "epochs" and document["reason"]
    # Every size raced fits: the chosen one trains whole, and each race did.
    assert (document["micro_batch_size"], document["accumulation_steps"]) == (found.batch_size, 1)
    assert all(r.advice.micro_batching.accumulation_steps == 1 for r in found.races)


def test_target_mode_takes_the_race_that_reached_the_target_soonest() -> None:
    train, val = problem()
    settings = BatchSettings(mode="target", target=0.8, max_batch_size=64, race=race())
    found = advise_batch_size(make_model, train, val, settings)
    reached = [r for r in found.races if r.seconds_to_target is not None]
    assert reached, [r.value for r in found.races]
    first = min(reached, key=lambda r: r.seconds_to_target or math.inf)
    assert found.batch_size == first.batch_size and found.lr == first.lr
    # The lr advised is the candidate of that race that reached the target first.
    epochs = {c.lr: first_reached(c.curve, 0.8, True) for c in first.advice.candidates}
    reached_epochs = [e for e in epochs.values() if e is not None]
    assert epochs[first.lr] == first.epochs_to_target == min(reached_epochs)
    step = {p.batch_size: p.step_seconds for p in found.predictions}
    for r in reached:
        assert r.seconds_to_target == pytest.approx(
            (r.epochs_to_target or 0) * r.steps_per_epoch * step[r.batch_size]
        )
        # A measured crossing outranks a projection: projections only where none was measured.
        assert not r.projected or all(q.projected or q.epochs_to_target is None for q in reached)
        # A projection lies past the race and within the budget; a measurement within it.
        decided = r.advice.decided_at
        if r.projected:
            assert decided <= (r.epochs_to_target or 0) <= r.epochs
        else:
            assert (r.epochs_to_target or 0) <= decided
    # The predicted times are calibrated on the chosen size's measured one.
    predicted = dict(found.predicted_seconds)
    assert predicted[found.batch_size] == pytest.approx(first.seconds_to_target)
    # Unreachable: the model's choice stands, and the advice says so.
    never = BatchSettings(mode="target", target=1.0, max_batch_size=32, race=race(epochs=1.0))
    missed = advise_batch_size(make_model, train, val, never)
    if all(r.seconds_to_target is None for r in missed.races):
        assert (
            missed.batch_size == missed.predicted and "no raced batch size reached" in missed.reason
        )


def test_for_a_target_the_noise_scale_is_read_where_the_noise_run_reaches_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The B_noise of a target is the smoothed B_simple at the first check whose validation
    accuracy reached it, over half the budget; at the run's end where none did; early
    (NOISE_EPOCHS) without a target."""
    runs: list[NoiseRun] = []

    def recording(*args: object, **kwargs: object) -> NoiseRun:
        run = track_noise_scale(*args, **kwargs)  # type: ignore[arg-type]
        runs.append(run)
        return run

    monkeypatch.setattr(driver, "track_noise_scale", recording)
    train, val = problem()
    for target in (0.75, 1.0):
        settings = BatchSettings(mode="target", target=target, race=race(epochs=4.0))
        found = driver.measure_noise(
            make_model, train, val, settings, nn.CrossEntropyLoss(), [8, 16, 32], "accuracy"
        )
        run = runs[-1]
        assert run.points[-1].epoch == pytest.approx(2.0)  # half the budget
        first = next((p for p in run.points if p.val_accuracy >= target), None)
        read = first or run.points[-1]
        assert found.reached_target is (first is not None)
        assert found.b_noise == read.b_simple_smoothed and found.epochs == read.epoch
        assert found.stderr == read.b_simple_stderr
    assert runs[0].points[-1].val_accuracy >= 0.75 > runs[0].points[0].val_accuracy
    assert found.reached_target is False and "short of the target" in found.where()
    early = driver.measure_noise(
        make_model,
        train,
        val,
        BatchSettings(race=race(epochs=4.0)),
        nn.CrossEntropyLoss(),
        [8, 16, 32],
        "accuracy",
    )
    assert early.reached_target is None and early.epochs == pytest.approx(driver.NOISE_EPOCHS)


def test_time_mode_gives_each_race_the_epochs_its_step_time_allows() -> None:
    train, val = problem()
    settings = BatchSettings(mode="time", time=0.5, max_batch_size=64, race=race())
    found = advise_batch_size(make_model, train, val, settings)
    step = {p.batch_size: p.step_seconds for p in found.predictions}
    for r in found.races:
        assert r.epochs * r.steps_per_epoch * step[r.batch_size] == pytest.approx(0.5)
    assert found.predicted == choose(found.predictions, "time")


def test_the_driver_refuses_what_cannot_work() -> None:
    train, val = problem()
    with pytest.raises(LrkitValueError, match="min_batch_size must be at most an eighth"):
        advise_batch_size(make_model, train, val, BatchSettings(min_batch_size=512, race=race()))
    with pytest.raises(LrkitValueError, match="target must be an accuracy in"):
        advise_batch_size(
            make_model, train, val, BatchSettings(mode="target", target=2.0, race=race())
        )
    with pytest.raises(LrkitValueError, match="not even a batch of 8"):
        advise_batch_size(make_model, train, val, BatchSettings(race=race(memory=100)))


# the CLI


USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make_model():
        return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))

    def make_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1200, 8, generator=g)
        return x, (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long()
    """
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    (tmp_path / "bsmodels.py").write_text(USER_MODULE)
    return tmp_path


USER = ["--model", "bsmodels:make_model", "--data", "bsmodels:make_data"]


def test_cli_advise_without_a_batch_size_chooses_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["advise", *USER, "--epochs", "2", "--max-batch-size", "64", "--workers", "1"]
    code, out, err = run([*args, "--candidates", "4", "--json", "a.json"], capsys)
    assert code == 0, err
    document = json.loads((workdir / "a.json").read_text())
    assert {"batch_size", "lr", "metric", "candidates", "seconds", "noise_scale"} <= set(document)
    assert document["batch_size"] in [r["batch_size"] for r in document["races"]]
    assert document["lr"] == next(
        r["lr"] for r in document["races"] if r["batch_size"] == document["batch_size"]
    )
    assert "noise scale: B_noise" in out and "<- advised" in out
    assert f"advised: batch size {document['batch_size']}" in out


@pytest.mark.slow  # the figure and the report: in make test, not test-fast
def test_cli_advise_target_writes_its_figure_and_report(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["advise", *USER, "--epochs", "2", "--max-batch-size", "32", "--workers", "1"]
    files = ["--plot", "b.png", "--report", "b.html", "--json", "b.json"]
    code, _, err = run([*args, "--target", "0.8", "--candidates", "3", *files], capsys)
    assert code == 0, err
    assert (workdir / "b.png").stat().st_size > 0
    page = (workdir / "b.html").read_text()
    assert "Batch size (this run)" in page and "Advice (this run)" in page
    assert "bsmodels:make_model on bsmodels:make_data, batch size" in page  # names, not types
    assert json.loads((workdir / "b.json").read_text())["mode"] == "target"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time", "0"], "--time must be a number in (0, 1e+07] (seconds), got 0.0"),
        (["--time", "-5"], "--time must be a number in (0, 1e+07] (seconds), got -5.0"),
        (["--target", "1.5"], "--target must be an accuracy in (0, 1], got 1.5"),
        (["--target", "0.9", "--time", "10"], "give one budget: --target or --time, not both"),
        (["--target", "0.9", "--batch-size", "16"], "--target is a budget for choosing the batch"),
        (["--time", "5", "--batch-size", "16"], "--time is a budget for choosing the batch"),
        (["--memory", "lots"], "--memory must be an amount of memory like 4GiB"),
        (["--ceiling", "guess"], "--ceiling must be one of auto, probe, memory, got 'guess'"),
        (["--min-batch-size", "0"], "--min-batch-size must be an integer in [1, 1048576], got 0"),
        (["--max-batch-size", "4"], "--max-batch-size must be an integer in [8, 1048576], got 4"),
        (["--min-batch-size", "200"], "--min-batch-size must be at most an eighth"),
    ],
)
def test_cli_advise_bad_budgets_exit_2_in_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(["advise", *USER, "--epochs", "1", *args], capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and out == "", err
    assert len(errors) == 1 and "Traceback" not in err
    assert message in errors[0]
