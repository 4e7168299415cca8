"""The noise rule lr(B) = lr_max / (1 + B_noise / B) and the rule comparison (pure core):
closed forms, the regimes, the fit recovering exact parameters."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit.errors import LrkitValueError
from lrkit.scaling import compare_rules, fit_noise_rule, noise_rule, scale_lr


def test_the_rule_passes_through_the_known_lr_and_saturates_at_lr_max() -> None:
    rule = noise_rule(0.1, 16, 160)
    assert rule.lr_max == pytest.approx(0.1 * (1 + 160 / 16))  # 1.1
    assert rule.predict(16) == pytest.approx(0.1)
    assert rule.predict(160) == pytest.approx(1.1 / 2)  # half of lr_max at B = B_noise
    assert rule.predict(1e12) == pytest.approx(1.1, rel=1e-9)
    # well below B_noise the rule is the linear rule
    assert noise_rule(0.1, 1, 1e9).predict(4) == pytest.approx(0.4, rel=1e-8)


@pytest.mark.parametrize(
    ("batch_size", "regime"),
    [
        (1, "linear"),
        (40, "linear"),
        (41, "transition"),
        (160, "transition"),
        (639, "transition"),
        (640, "saturated"),
        (10_000, "saturated"),
    ],
)
def test_regimes_at_a_quarter_and_four_times_the_noise_scale(batch_size: int, regime: str) -> None:
    rule = noise_rule(0.1, 16, 160)
    assert rule.regime(batch_size) == regime
    assert rule.describe_regime(batch_size).startswith(f"batch {batch_size} is in the {regime}")


@given(
    lr_max=st.floats(1e-3, 10.0),
    noise=st.floats(2.0, 5000.0),
    sizes=st.lists(st.sampled_from([8, 16, 32, 64, 128, 256, 512, 1024]), min_size=3, unique=True),
)
def test_the_fit_recovers_exact_parameters(lr_max: float, noise: float, sizes: list[int]) -> None:
    # identifiable when the batch sizes reach from well below to around B_noise
    if not (min(sizes) <= noise / 2 and max(sizes) >= noise / 8):
        return
    best = {b: lr_max / (1 + noise / b) for b in sizes}
    fit = fit_noise_rule(best)
    assert fit.noise_scale == pytest.approx(noise, rel=1e-3)
    assert fit.lr_max == pytest.approx(lr_max, rel=1e-3)


def test_comparison_names_the_rule_that_made_the_data() -> None:
    linear = {b: 0.01 * b for b in (16, 32, 64, 128)}
    comparison = compare_rules(linear)
    assert comparison.reference == 16
    assert comparison.errors["linear"] == pytest.approx(0.0, abs=1e-12)
    assert comparison.errors["fit"] == pytest.approx(0.0, abs=1e-9)
    # sqrt is off by sqrt(2), 2, 2 sqrt(2) at 32, 64, 128: log2 errors 0.5, 1, 1.5
    assert comparison.errors["sqrt"] == pytest.approx(math.sqrt((0.25 + 1 + 2.25) / 3))

    saturating = {b: 1.0 / (1 + 100 / b) for b in (16, 32, 64, 128, 256, 512)}
    measured = compare_rules(saturating, noise_scale=100)
    assert measured.errors["noise"] == pytest.approx(0.0, abs=1e-12)
    assert "measured" in measured.notes["noise"]
    fitted = compare_rules(saturating)
    assert fitted.errors["noise"] == pytest.approx(0.0, abs=1e-6)
    assert "fitted" in fitted.notes["noise"]
    assert min(fitted.errors, key=fitted.errors.__getitem__) == "noise"


def test_scale_lr_noise_rule_and_its_errors() -> None:
    assert scale_lr(0.1, 16, 160, "noise", noise_scale=160) == pytest.approx(0.55)
    with pytest.raises(LrkitValueError, match="needs the gradient noise scale"):
        scale_lr(0.1, 16, 160, "noise")
    with pytest.raises(LrkitValueError, match="two batch sizes"):
        compare_rules({16: 0.1})
    with pytest.raises(ValueError, match="batch_size"):
        compare_rules({16: 0.1, 32: 0.2}, reference=64)
