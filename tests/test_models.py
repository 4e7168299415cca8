"""The built-in models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrkit.errors import LrkitValueError
from lrkit.models import MODELS, build_model


def test_textbook_network_layers_activations_and_init() -> None:
    model = build_model("mnist-mlp", seed=0)
    layers = [m for m in model.modules() if not isinstance(m, nn.Sequential)]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Flatten", "Linear", "Sigmoid", "Linear", "Tanh", "Linear"]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 64), (64, 16), (16, 10)]
    for m in linears:
        bound = math.sqrt(6.0 / (m.in_features + m.out_features))  # Xavier-uniform
        weight = m.weight.detach()
        assert float(weight.abs().max()) <= bound
        assert float(weight.abs().max()) > 0.9 * bound
        assert torch.count_nonzero(m.bias) == 0


@pytest.mark.parametrize("name", list(MODELS))
def test_models_map_mnist_images_to_ten_logits(name: str) -> None:
    out = build_model(name, seed=0)(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)


def test_same_seed_same_weights_and_the_global_rng_is_untouched() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = build_model("mnist-cnn", 7), build_model("mnist-cnn", 7)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = build_model("mnist-cnn", 8)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_unknown_model_lists_the_names() -> None:
    with pytest.raises(LrkitValueError, match="mnist-mlp, logistic, mnist-cnn"):
        build_model("resnet", 0)
