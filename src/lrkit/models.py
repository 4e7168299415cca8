"""Built-in models by name.

- ``mnist-mlp``: the textbook's network, 784-64-16-10, sigmoid then tanh, softmax output
  (the model gives logits; the cross-entropy loss applies the softmax), Xavier-uniform
  weights (Glorot & Bengio 2010) and zero biases.
- ``logistic``: multinomial logistic regression, 784-10.
- ``mnist-cnn``: a small CNN, two 3x3 conv + ReLU + 2x2 max-pool blocks (8 and 16 channels)
  and a linear classifier; PyTorch's default initialisation.

Each takes images of shape (N, 1, 28, 28) (or anything that flattens to 784 for the MLPs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from lrkit.errors import LrkitValueError, quoted


def _xavier_zero(model: nn.Module) -> nn.Module:
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def mnist_mlp() -> nn.Module:
    """The textbook's 784-64-16-10 network: sigmoid, tanh, softmax output (logits out)."""
    return _xavier_zero(
        nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 64),
            nn.Sigmoid(),
            nn.Linear(64, 16),
            nn.Tanh(),
            nn.Linear(16, 10),
        )
    )


def logistic() -> nn.Module:
    """Multinomial logistic regression on the 784 pixels (logits out)."""
    return _xavier_zero(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))


def mnist_cnn() -> nn.Module:
    """A small CNN: [conv3x3 -> ReLU -> maxpool2] x 2 (8, 16 channels), then linear."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


MODELS: Mapping[str, Callable[[], nn.Module]] = {
    "mnist-mlp": mnist_mlp,
    "logistic": logistic,
    "mnist-cnn": mnist_cnn,
}


def build_model(name: str, seed: int) -> nn.Module:
    """The built-in model ``name``, initialised from ``seed`` (the global RNG is left as it was)."""
    factory = MODELS.get(name)
    if factory is None:
        raise LrkitValueError(
            f"unknown model {quoted(name)}; choose one of {', '.join(MODELS)} "
            "or give module:factory",
            cli_message=f"--model {quoted(name)} is not a built-in model ({', '.join(MODELS)}) "
            "nor an import path module:factory",
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()
