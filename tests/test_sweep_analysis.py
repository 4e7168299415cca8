"""Best learning rates, noise flags, the power-law fit, scaling rules and the textbook's claims."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit.errors import LrkitValueError
from lrkit.experiments.textbook import all_pairs, judge
from lrkit.scaling import fit_power_law, scale_lr
from lrkit.sweep.analysis import best_lr_by_batch_size, fit_best, scored_trials


@dataclass(frozen=True)
class Fake:
    batch_size: int
    lr: float
    status: str
    final_val_accuracy: float | None
    best_val_accuracy: float | None


def trials(table: dict[tuple[int, float], list[float]]) -> list[Fake]:
    return [Fake(b, lr, "done", a, a + 0.01) for (b, lr), accs in table.items() for a in accs]


def test_best_lr_with_mean_and_spread() -> None:
    best = best_lr_by_batch_size(
        trials({(16, 0.1): [0.90, 0.92], (16, 0.5): [0.80, 0.82], (128, 0.5): [0.95, 0.95]})
    )
    assert best[16].lr == 0.1
    assert best[16].mean == pytest.approx(0.91)
    assert best[16].std == pytest.approx(math.sqrt(2) * 0.01)
    assert best[16].runner_up is not None and best[16].runner_up.lr == 0.5
    assert best[16].within_noise is False
    assert best[128].runner_up is None and best[128].within_noise is None


def test_close_means_are_flagged_within_noise() -> None:
    best = best_lr_by_batch_size(trials({(32, 0.3): [0.90, 0.94], (32, 0.5): [0.91, 0.92]}))
    assert best[32].within_noise is True


def test_one_repeat_has_no_noise_verdict() -> None:
    best = best_lr_by_batch_size(trials({(32, 0.3): [0.90], (32, 0.5): [0.91]}))
    assert best[32].lr == 0.5 and best[32].within_noise is None


def test_a_diverged_trial_scores_zero() -> None:
    data = [Fake(16, 1.0, "diverged", 0.99, 0.99), Fake(16, 0.1, "done", 0.5, 0.5)]
    assert best_lr_by_batch_size(data)[16].lr == 0.1


def test_a_failed_trial_is_left_out_of_the_ranking_not_scored_zero() -> None:
    failed = [Fake(16, 1.0, "failed", None, None), Fake(16, 0.1, "done", 0.5, 0.5)]
    best = best_lr_by_batch_size(failed)[16]
    assert best.lr == 0.1 and best.runner_up is None  # 1.0 is not a candidate at all
    assert [s.lr for s in best.scores] == [0.1]
    diverged = [Fake(16, 1.0, "diverged", None, None), Fake(16, 0.1, "done", 0.5, 0.5)]
    runner_up = best_lr_by_batch_size(diverged)[16].runner_up
    assert runner_up is not None and (runner_up.lr, runner_up.mean, runner_up.diverged) == (
        1.0,
        0,
        1,
    )


def test_a_failed_repeat_does_not_pull_its_learning_rate_down() -> None:
    data = [
        Fake(16, 0.5, "done", 0.9, 0.9),
        Fake(16, 0.5, "failed", None, None),
        Fake(16, 0.1, "done", 0.8, 0.8),
    ]
    (top, second) = best_lr_by_batch_size(data)[16].scores
    assert (top.lr, top.mean, top.n, top.diverged) == (0.5, 0.9, 1, 0)
    assert second.lr == 0.1


def test_a_batch_size_whose_every_trial_failed_has_no_best_lr() -> None:
    data = [Fake(16, 0.1, "done", 0.8, 0.8), Fake(64, 0.1, "failed", None, None)]
    assert set(best_lr_by_batch_size(data)) == {16}
    assert scored_trials(data) == data[:1]


def test_metric_best_ranks_by_best_accuracy() -> None:
    data = [Fake(16, 0.1, "done", 0.90, 0.91), Fake(16, 0.5, "done", 0.89, 0.95)]
    assert best_lr_by_batch_size(data, "final")[16].lr == 0.1
    assert best_lr_by_batch_size(data, "best")[16].lr == 0.5


@given(
    k=st.floats(-1.0, 2.0),
    c=st.floats(1e-3, 10.0),
    sizes=st.lists(
        st.sampled_from([8, 16, 32, 64, 128, 256, 512]), min_size=2, max_size=7, unique=True
    ),
)
def test_fit_recovers_an_exact_power_law(k: float, c: float, sizes: list[int]) -> None:
    fit = fit_power_law({b: c * b**k for b in sizes})
    assert fit.k == pytest.approx(k, abs=1e-9)
    assert fit.c == pytest.approx(c, rel=1e-7)
    if len(sizes) > 2:
        assert fit.k_stderr == pytest.approx(0.0, abs=1e-6)
    else:
        assert fit.k_stderr is None


def test_fit_stderr_matches_least_squares_by_matrix_algebra() -> None:
    best = {16: 0.1, 32: 0.3, 64: 0.3, 128: 0.5, 256: 0.8}
    fit = fit_power_law(best)
    x = np.log(np.array(list(best), dtype=float))
    y = np.log(np.array(list(best.values())))
    design = np.column_stack([np.ones_like(x), x])
    coef, residual, *_ = np.linalg.lstsq(design, y, rcond=None)
    sigma2 = residual[0] / (len(x) - 2)
    cov = sigma2 * np.linalg.inv(design.T @ design)
    assert fit.k == pytest.approx(coef[1])
    assert fit.k_stderr == pytest.approx(math.sqrt(cov[1, 1]))


def test_fit_uses_only_batch_sizes_with_a_choice_of_lr() -> None:
    best = best_lr_by_batch_size(
        trials(
            {
                (16, 0.1): [0.9],
                (16, 0.3): [0.8],
                (64, 0.5): [0.9],
                (128, 0.5): [0.9],
                (128, 0.8): [0.8],
            }
        )
    )
    fit = fit_best(best)
    assert fit is not None and fit.batch_sizes == (16, 128)


def test_fit_needs_two_batch_sizes() -> None:
    with pytest.raises(LrkitValueError):
        fit_power_law({16: 0.1})


@pytest.mark.parametrize(
    ("rule", "k", "expected"),
    [("linear", None, 2.0), ("sqrt", None, 1.0), ("fit", 0.25, 0.5 * 2**0.5)],
)
def test_scaling_rules(rule: str, k: float | None, expected: float) -> None:
    assert scale_lr(0.5, 128, 512, rule, k) == pytest.approx(expected)


@given(
    lr=st.floats(1e-5, 10.0),
    b=st.integers(1, 4096),
    to=st.integers(1, 4096),
    mid=st.integers(1, 4096),
)
def test_linear_scaling_composes(lr: float, b: int, to: int, mid: int) -> None:
    direct = scale_lr(lr, b, to, "linear")
    assert scale_lr(scale_lr(lr, b, mid, "linear"), mid, to, "linear") == pytest.approx(
        direct, rel=1e-12
    )
    assert scale_lr(lr, b, b, "sqrt") == pytest.approx(lr)


def test_the_textbook_grids_share_trials() -> None:
    pairs = all_pairs()
    assert len(pairs) == 14  # 16 pairs, two shared: (128, 0.5) and (32, 0.5)
    assert (128, 0.5) in pairs and (32, 0.5) in pairs


def test_claims_are_judged_within_their_grid() -> None:
    table = {
        (128, 0.2): [0.90],
        (128, 0.3): [0.91],
        (128, 0.5): [0.95],
        (128, 0.8): [0.92],
        (32, 0.1): [0.90],
        (32, 0.3): [0.96],
        (32, 0.5): [0.95],
        (32, 0.7): [0.91],
        (16, 0.1): [0.97],
        (16, 0.3): [0.96],
        (16, 0.5): [0.95],
        (16, 0.7): [0.91],
    }
    verdicts = {v.claim.batch_size: v.verdict for v in judge(trials(table))}
    assert verdicts == {128: "supported", 32: "not supported", 16: "supported"}


def test_one_repeat_is_judged_by_the_binomial_error_of_the_validation_accuracy() -> None:
    data = trials({(16, 0.5): [0.9660], (16, 0.1): [0.9655], (16, 0.3): [0.9500]})
    best = best_lr_by_batch_size(data, "final", val_size=2000)
    assert best[16].lr == 0.5
    assert best[16].within_noise is True  # one image of 2,000 apart
    assert best[16].scores[0].stderr == pytest.approx(math.sqrt(0.966 * 0.034 / 2000))
    far = best_lr_by_batch_size(trials({(16, 0.5): [0.97], (16, 0.1): [0.90]}), "final", 2000)
    assert far[16].within_noise is False


def test_a_claimed_lr_within_noise_of_the_best_is_judged_so() -> None:
    table = {
        (128, 0.2): [0.90],
        (128, 0.3): [0.91],
        (128, 0.5): [0.96],
        (128, 0.8): [0.96],
        (32, 0.1): [0.90],
        (32, 0.3): [0.96],
        (32, 0.5): [0.90],
        (32, 0.7): [0.97],
        (16, 0.1): [0.9655],
        (16, 0.3): [0.96],
        (16, 0.5): [0.9660],
        (16, 0.7): [0.95],
    }
    verdicts = {v.claim.batch_size: v.verdict for v in judge(trials(table), val_size=2000)}
    assert verdicts == {128: "supported", 32: "not supported", 16: "within noise"}


def test_the_fit_says_which_rules_it_is_consistent_with() -> None:
    fit = fit_power_law({16: 0.1, 32: 0.14, 64: 0.2, 128: 0.28})  # about sqrt
    assert fit.consistent_with(0.5) is True
    assert fit.consistent_with(1.0) is False
    text = fit.describe()
    assert (
        "the linear rule (k = 1) is outside it, the square-root rule (k = 0.5) is within it" in text
    )
    assert fit_power_law({16: 0.1, 64: 0.4}).consistent_with(1.0) is None


def test_a_claim_whose_trial_failed_is_not_measured() -> None:
    table = {(b, lr): [0.9] for b, lr in all_pairs()}
    data = [t for t in trials(table) if (t.batch_size, t.lr) != (32, 0.5)]
    data.append(Fake(32, 0.5, "failed", None, None))
    found = {v.claim.batch_size: v for v in judge(data, val_size=2000)}
    assert found[32].verdict == "not measured"
    assert "not measured" in found[32].sentence()
    assert found[128].verdict != "not measured"
    only_failed = [Fake(16, lr, "failed", None, None) for lr in (0.1, 0.3, 0.5, 0.7)]
    assert judge(only_failed)[2].verdict == "not measured"
