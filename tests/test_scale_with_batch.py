"""What moves with the batch size besides SGD's lr: Adam's surge (Li et al. 2024), Adam's beta2
(its half-life in examples, Marek et al. 2025) and AdamW's weight decay (its timescale in
examples, Wang & Aitchison 2024), against their closed forms and hand-computed values, fitted
back from a sweep that follows them, and through `lrkit scale`."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli_run import run
from lrkit.errors import LrkitValueError
from lrkit.scaling import (
    beta2_half_life,
    compare_rules,
    fit_surge_rule,
    scale_beta2,
    scale_lr,
    scale_weight_decay,
    surge_factor,
    surge_rule,
    weight_decay_timescale,
)

sizes = st.integers(1, 1 << 16)
noise = st.floats(1.0, 1e5)


# Adam's surge


def test_the_surge_by_hand() -> None:
    # B = 64, B_noise = 256: s = (2 + 1/2) / 2 = 1.25, lr_peak = 3e-4 * 1.25.
    rule = surge_rule(3e-4, 64, 256)
    assert rule.lr_peak == pytest.approx(3.75e-4)
    assert rule.predict(256) == pytest.approx(3.75e-4)
    # B' = 1024: s = (1/2 + 2) / 2 = 1.25 again: the same lr as at 64, on the other side.
    assert rule.predict(1024) == pytest.approx(3e-4)
    assert scale_lr(3e-4, 64, 512, "surge", noise_scale=256) == pytest.approx(
        3.75e-4 / (0.5 * (math.sqrt(0.5) + math.sqrt(2)))
    )


@given(sizes, sizes, noise)
def test_the_surge_passes_through_its_lr_peaks_at_b_noise_and_is_symmetric_in_log_b(
    b: int, to: int, b_noise: float
) -> None:
    rule = surge_rule(0.01, b, b_noise)
    assert rule.predict(b) == pytest.approx(0.01)
    assert rule.predict(b_noise) == pytest.approx(rule.lr_peak)
    assert rule.predict(to) <= rule.lr_peak * (1 + 1e-12)
    assert rule.predict(b_noise * 3.7) == pytest.approx(rule.predict(b_noise / 3.7))
    assert surge_factor(to, b_noise) >= 1.0 - 1e-12


def test_far_from_b_noise_the_surge_is_a_square_root_rising_then_falling() -> None:
    rule = surge_rule(1.0, 1000, 1000)  # lr_peak 1 at 1000
    assert rule.predict(1e-3) == pytest.approx(2 * math.sqrt(1e-3 / 1000), rel=1e-3)
    assert rule.predict(1e9) == pytest.approx(2 * math.sqrt(1000 / 1e9), rel=1e-3)


def test_a_sweep_that_follows_a_surge_is_fitted_back_and_the_surge_rule_wins_the_comparison() -> (
    None
):
    truth = surge_rule(1e-3, 32, 300.0)
    measured = {b: truth.predict(b) for b in (16, 32, 64, 128, 256, 512, 1024, 2048)}
    fitted = fit_surge_rule(measured)
    assert fitted.noise_scale == pytest.approx(300.0, rel=1e-4)
    assert fitted.lr_peak == pytest.approx(truth.lr_peak, rel=1e-4)
    compared = compare_rules(measured)
    assert compared.errors["surge"] < 1e-4
    assert min(compared.errors, key=compared.errors.__getitem__) == "surge"
    assert "fitted to the sweep" in compared.notes["surge"]
    with_noise = compare_rules(measured, noise_scale=300.0)
    assert with_noise.errors["surge"] < 1e-9
    assert with_noise.notes["surge"] == "B_noise = 300 measured"


def test_the_surge_needs_b_noise() -> None:
    with pytest.raises(LrkitValueError, match="needs the gradient noise scale"):
        scale_lr(0.1, 64, 128, "surge")


# Adam's beta2


def test_beta2_by_hand() -> None:
    assert scale_beta2(0.999, 64, 128) == pytest.approx(0.999**2)  # 0.998001
    assert scale_beta2(0.95, 512, 64) == pytest.approx(0.95**0.125)
    assert scale_beta2(0.99, 100, 100) == pytest.approx(0.99)
    # Half-life: 64 ln(1/2) / ln(0.999) = 64 x 692.80 = 44,339 examples.
    assert beta2_half_life(0.999, 64) == pytest.approx(44339.2, rel=1e-5)


@given(sizes, sizes, st.floats(0.5, 0.99999))
def test_beta2_keeps_its_half_life_in_examples(b: int, to: int, beta2: float) -> None:
    moved = scale_beta2(beta2, b, to)
    if 0.0 < moved < 1.0:
        assert beta2_half_life(moved, to) == pytest.approx(beta2_half_life(beta2, b), rel=1e-6)


@pytest.mark.parametrize("beta2", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_beta2_outside_zero_one_is_refused(beta2: float) -> None:
    with pytest.raises(LrkitValueError, match="beta2 must be a number in"):
        scale_beta2(beta2, 64, 128)


# AdamW's weight decay


def test_weight_decay_by_hand() -> None:
    # The linear rule keeps lr / B, so it keeps the decay.
    assert scale_weight_decay(0.1, 1e-3, 8e-3, 64, 512) == pytest.approx(0.1)
    # The square-root rule: lr' = lr sqrt(8), so wd' = wd * 8 / sqrt(8) = wd sqrt(8).
    assert scale_weight_decay(0.1, 1e-3, 1e-3 * math.sqrt(8), 64, 512) == pytest.approx(
        0.1 * math.sqrt(8)
    )
    # A fixed lr: wd' = wd B'/B.
    assert scale_weight_decay(0.05, 3e-4, 3e-4, 256, 64) == pytest.approx(0.0125)
    assert scale_weight_decay(0.0, 1e-3, 2e-3, 64, 128) == 0.0
    assert weight_decay_timescale(0.1, 1e-3, 64) == pytest.approx(640_000)
    assert weight_decay_timescale(0.0, 1e-3, 64) == math.inf


@given(sizes, sizes, st.floats(1e-5, 1.0), st.floats(1e-5, 1.0), st.floats(1e-4, 1.0))
def test_weight_decay_keeps_its_timescale_in_examples(
    b: int, to: int, lr: float, new_lr: float, wd: float
) -> None:
    moved = scale_weight_decay(wd, lr, new_lr, b, to)
    assert weight_decay_timescale(moved, new_lr, to) == pytest.approx(
        weight_decay_timescale(wd, lr, b), rel=1e-9
    )


# the CLI


def test_lrkit_scale_gives_the_lr_beta2_and_weight_decay_for_the_new_batch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["scale", "--lr", "3e-4", "--batch-size", "64", "--to", "512", "--rule", "sqrt"]
    status, out, err = run([*args, "--beta2", "0.999", "--weight-decay", "0.1"], capsys)
    assert status == 0, err
    assert "learning rate for batch size 512: 0.0008485281374" in out
    assert f"beta2 for batch size 512: {0.999**8:.6g} (beta2' = beta2 ** (B' / B)" in out
    assert "weight decay for batch size 512: 0.2828 (wd' = wd * (lr / lr') * (B' / B)" in out
    status, out, err = run(
        ["scale", "--lr", "3e-4", "--batch-size", "64", "--to", "512", "--rule", "surge",
         "--noise-scale", "256"],
        capsys,
    )  # fmt: skip
    assert status == 0, err
    assert "learning rate for batch size 512: 0.0003535533906" in out
    assert "lr_peak = 0.000375 at batch size 256" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--beta2", "1"], "--beta2 must be a number in (0, 1), got 1"),
        (["--beta2", "0"], "--beta2 must be a number in (0, 1), got 0"),
        (["--weight-decay", "-0.1"], "--weight-decay must be a finite number >= 0, got -0.1"),
        (["--rule", "surge"], "--rule surge needs the gradient noise scale"),
        (["--rule", "bounce"], "--rule must be one of linear, sqrt, fit, noise, surge"),
    ],
)
def test_bad_scaling_input_is_one_line_and_exit_2(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["scale", "--lr", "3e-4", "--batch-size", "64", "--to", "512"]
    status, out, err = run([*base, *extra], capsys)
    assert status == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_beta2_and_weight_decay_are_refused_with_compare(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, _, err = run(["scale", "--compare", "--beta2", "0.99"], capsys)
    assert status == 2
    assert "--beta2 is scaled to --to, which --compare does not take" in err
