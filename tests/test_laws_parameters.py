"""``lrkit.laws.parameters``: N counted on the meta device at any size, built at the ladder's
sizes where the factory fails there, extrapolated at a target by the lowest-degree polynomial
through the ladder's counts, and the factories that ignore their size refused."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lrkit.errors import LrkitValueError
from lrkit.laws.parameters import (
    check_counts,
    counted_on_meta,
    ladder_counts,
    polynomial_count,
    target_count,
)


def two_hidden(width: int) -> nn.Module:
    """N = 784 w + w + w^2 + w + 10 w + 10 = w^2 + 796 w + 10."""
    return nn.Sequential(nn.Linear(784, width), nn.Linear(width, width), nn.Linear(width, 10))


def not_on_meta(width: int) -> nn.Module:
    """``two_hidden``, reading a weight's value: PyTorch's meta device has none to read."""
    model = two_hidden(width)
    model[0].weight.abs().max().item()
    return model


def quadratic(width: int) -> int:
    return width**2 + 796 * width + 10


def test_a_model_of_any_size_is_counted_on_the_meta_device() -> None:
    """A width of a million: 10^12 parameters, 4 TB as float32, counted without memory."""
    assert counted_on_meta(two_hidden, 1_000_000) == quadratic(1_000_000)


def test_counting_leaves_the_global_rng_as_it_was() -> None:
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    counted_on_meta(two_hidden, 64)
    assert torch.equal(torch.rand(3), expected)


def test_a_factory_that_fails_on_meta_is_built_at_the_ladders_sizes() -> None:
    with pytest.raises(RuntimeError):
        counted_on_meta(not_on_meta, 8)
    assert ladder_counts(not_on_meta, [16, 8, 32]) == {s: quadratic(s) for s in (8, 16, 32)}


def test_a_targets_count_is_the_ladders_then_the_meta_devices_then_extrapolated() -> None:
    counts = {s: quadratic(s) for s in (8, 16, 32, 64)}
    assert target_count(not_on_meta, counts, 32, "m:f", "width").parameters == quadratic(32)
    on_meta = target_count(two_hidden, counts, 10**6, "m:f", "width")
    assert on_meta.parameters == quadratic(10**6) and on_meta.extrapolated == ""
    far = target_count(not_on_meta, counts, 10**6, "m:f", "width")
    assert far.parameters == quadratic(10**6)
    assert far.extrapolated.startswith("a quadratic in the width through the ladder's counts")
    assert "Tensor.item() cannot be called on meta tensors" in far.extrapolated


def test_counts_no_polynomial_of_degree_two_fits_are_refused() -> None:
    counts = {1: 2, 2: 4, 3: 8, 4: 16}  # 2^w
    assert polynomial_count(counts, 5) is None
    with pytest.raises(LrkitValueError, match="--predict-depth 5: --model 'm:f' cannot be built"):
        target_count(not_on_meta, counts, 5, "m:f", "depth")


@pytest.mark.parametrize(
    ("counts", "degree"),
    [
        ({8: 100, 16: 100, 32: 100}, 0),
        ({1: 12, 2: 22, 3: 32, 4: 42}, 1),
        ({8: quadratic(8), 16: quadratic(16), 32: quadratic(32), 64: quadratic(64)}, 2),
    ],
)
def test_the_lowest_degree_that_passes_through_every_count(
    counts: dict[int, int], degree: int
) -> None:
    found = polynomial_count(counts, 128)
    assert found is not None and found[1] == degree


@given(
    a=st.integers(0, 50),
    b=st.integers(0, 5000),
    c=st.integers(0, 5000),
    sizes=st.sets(st.integers(1, 4096), min_size=4, max_size=6),
    target=st.integers(1, 10**7),
)
@settings(deadline=None)
def test_a_quadratic_count_is_extrapolated_exactly(
    a: int, b: int, c: int, sizes: set[int], target: int
) -> None:
    def n(size: int) -> int:
        return a * size * size + b * size + c

    found = polynomial_count({s: n(s) for s in sizes}, target)
    if n(target) > 0:
        assert found is not None and found[0] == n(target)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({8: 0, 16: 0}, "--model 'm:f' has no trainable parameters at width 8"),
        ({8: 10, 16: 20, 32: 20}, r"the same model \(N = 20\) at widths 16, 32: its factory"),
    ],
)
def test_a_factory_that_ignores_its_size_is_refused(counts: dict[int, int], message: str) -> None:
    with pytest.raises(LrkitValueError, match=message):
        check_counts(counts, "m:f", "width")
    check_counts({8: 10, 16: 20, 32: 40}, "m:f", "width")  # sizes that build different models
