"""K copies of a model as one stacked network, converted from standard PyTorch layers.

A model can be stacked when it is an ``nn.Sequential`` (nested ones too) of ``Linear``,
``Conv2d``, element-wise activations, pooling, ``Flatten``, ``Dropout``, ``Identity`` and a
final ``LogSoftmax``/``Softmax``, with every parameter trainable and no buffers (BatchNorm's
running statistics are state the stack does not carry). Anything else gets the reason it
cannot be stacked, and the caller trains one trial at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lrkit.data.features import Inputs
from lrkit.training.vectorized import layers as stacked
from lrkit.training.vectorized.layers import (
    CHANNELS,
    SHARED,
    TRIALS,
    StackedLayer,
    StackedParameter,
)

aten = torch.ops.aten

Forward = Callable[[torch.Tensor], torch.Tensor]
Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _activation(module: nn.Module) -> tuple[Forward, Backward] | None:
    """(forward, backward(grad, input, output)) of an element-wise activation, else None."""
    m: Any = module
    if isinstance(m, nn.ReLU):
        return F.relu, lambda g, x, y: aten.threshold_backward(g, y, 0)
    if isinstance(m, nn.Sigmoid):
        return torch.sigmoid, lambda g, x, y: aten.sigmoid_backward(g, y)
    if isinstance(m, nn.Tanh):
        return torch.tanh, lambda g, x, y: aten.tanh_backward(g, y)
    if isinstance(m, nn.LeakyReLU):
        slope = m.negative_slope
        return (
            partial(F.leaky_relu, negative_slope=slope),
            lambda g, x, y: aten.leaky_relu_backward(g, x, slope, False),
        )
    if isinstance(m, nn.GELU):
        approximate = m.approximate
        return (
            partial(F.gelu, approximate=approximate),
            lambda g, x, y: aten.gelu_backward(g, x, approximate=approximate),
        )
    if isinstance(m, nn.ELU):
        alpha = m.alpha
        return partial(F.elu, alpha=alpha), lambda g, x, y: aten.elu_backward(
            g, alpha, 1, 1, False, x
        )
    if isinstance(m, nn.SiLU):
        return F.silu, lambda g, x, y: aten.silu_backward(g, x)
    if isinstance(m, nn.Softplus):
        beta, threshold = m.beta, m.threshold
        return (
            partial(F.softplus, beta=beta, threshold=threshold),
            lambda g, x, y: aten.softplus_backward(g, x, beta, threshold),
        )
    if isinstance(m, nn.Hardtanh):  # ReLU6 too
        low, high = m.min_val, m.max_val
        return (
            partial(F.hardtanh, min_val=low, max_val=high),
            lambda g, x, y: aten.hardtanh_backward(g, x, low, high),
        )
    return None


SUPPORTED = (
    "Linear, Conv2d, ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh, GELU, ELU, SiLU, Softplus, "
    "Hardtanh, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Dropout, Identity, "
    "LogSoftmax, Softmax, Sequential"
)


class NotStackableError(Exception):
    """Why a model cannot run in the vectorized engine (the caller falls back)."""


class StackedNetwork:
    """K trials of one architecture: forward, backward, their parameters, and each trial's
    weights given back in the original model's ``state_dict`` layout."""

    def __init__(self, layers: list[tuple[str, StackedLayer]], trials: int):
        self.layers = layers
        self.trials = trials
        first = next(i for i, (_, layer) in enumerate(layers) if layer.params)
        self._first_trainable = first

    @property
    def params(self) -> list[StackedParameter]:
        return [p for _, layer in self.layers for p in layer.params]

    def forward(self, x: torch.Tensor, training: bool = True) -> torch.Tensor:
        for _, layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: torch.Tensor) -> None:
        """Gradients of every parameter from the gradient of the output (K, B, ...)."""
        g: torch.Tensor | None = grad
        for index in range(len(self.layers) - 1, self._first_trainable - 1, -1):
            assert g is not None
            g = self.layers[index][1].backward(g, index > self._first_trainable)

    def keep(self, trials: torch.Tensor) -> None:
        """Keep only the trials at the sorted indices ``trials``."""
        for _, layer in self.layers:
            layer.keep(trials)
        self.trials = len(trials)

    def named_params(self) -> list[tuple[str, StackedParameter]]:
        """The parameters in the order of ``params``, named as in the original model's
        ``state_dict``."""
        return [
            (f"{name}.{key}" if name else key, p)
            for name, layer in self.layers
            for key, p in layer.named_params()
        ]

    def trial_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Trial ``k``'s parameters, keyed as the original model's ``state_dict``."""
        return {name: p.tensor.select(p.trial_axis, k).clone() for name, p in self.named_params()}

    def load_trial_state_dict(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Set trial ``k``'s parameters from a ``state_dict`` of the original model."""
        with torch.no_grad():
            for name, p in self.named_params():
                p.tensor.select(p.trial_axis, k).copy_(state[name])


def leaf_modules(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The layers of a (nested) Sequential in order, with their ``state_dict`` prefixes."""
    if type(model).forward is not nn.Sequential.forward:
        raise NotStackableError(
            f"{type(model).__name__} has its own forward(); the vectorized engine stacks "
            "nn.Sequential models of standard layers"
        )
    found = []
    for name, child in model.named_children():
        path = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            found.extend(leaf_modules(child, path + "."))
        else:
            found.append((path, child))
    return found


def check_stackable(model: nn.Module, example: Inputs) -> None:
    """Raise ``NotStackableError`` with the reason when ``model`` cannot be stacked."""
    stack_models([model], example, per_trial_input=False)


def tensor_inputs(x: Inputs) -> torch.Tensor:
    """``x`` as the one tensor of inputs the vectorized engine takes (``stack_models``
    refuses named inputs, so none reach a stack)."""
    if not isinstance(x, torch.Tensor):
        raise NotStackableError(
            "the inputs are named tensors (a dict batch); the vectorized engine takes one tensor"
        )
    return x


def stack_models(
    models: Sequence[nn.Module], example: Inputs, per_trial_input: bool
) -> StackedNetwork:
    """One stacked network from K models of the same architecture.

    ``example`` is a batch of inputs (B, ...) used to learn each layer's input shape;
    ``per_trial_input`` says whether the trials see different batches ((K, B, ...) inputs)
    or one shared batch."""
    example = tensor_inputs(example)
    first = models[0]
    if next(first.buffers(), None) is not None:
        names = ", ".join(name for name, _ in first.named_buffers())
        raise NotStackableError(
            f"the model keeps buffers ({names}), e.g. BatchNorm's running statistics, "
            "which the vectorized engine does not stack"
        )
    if any(not p.requires_grad for p in first.parameters()):
        raise NotStackableError("the model has frozen parameters (requires_grad=False)")
    structure = leaf_modules(first)
    others = [leaf_modules(m) for m in models[1:]]
    for other in others:
        if [(n, type(m)) for n, m in other] != [(n, type(m)) for n, m in structure]:
            raise NotStackableError("the trials' models differ in their layers")
    shapes = _input_shapes(first, [m for _, m in structure], example)
    k = len(models)
    layout = TRIALS if per_trial_input else SHARED
    built: list[tuple[str, StackedLayer]] = []
    for index, (name, module) in enumerate(structure):
        copies = [other[index][1] for other in [structure, *others]]
        layer = _convert(module, copies, layout, shapes[index], k)
        if layer is None:
            continue
        built.append((name, layer))
        layout = layer.out_layout
    if not any(layer.params for _, layer in built):
        raise NotStackableError("the model has no parameters to train")
    if layout != TRIALS:
        raise NotStackableError(
            "the model's output is not one vector per example; end it with Flatten or Linear"
        )
    return StackedNetwork(built, k)


def _input_shapes(
    model: nn.Module, modules: list[nn.Module], example: torch.Tensor
) -> list[tuple[int, ...]]:
    """Each layer's input shape per example, from one forward pass of ``example``."""
    shapes: dict[int, tuple[int, ...]] = {}

    def record(index: int) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            shapes.setdefault(index, tuple(inputs[0].shape[1:]))

        return hook

    handles = [m.register_forward_pre_hook(record(i)) for i, m in enumerate(modules)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            try:
                model(example)
            except Exception as exc:
                raise NotStackableError(
                    f"the model fails on a batch of shape {tuple(example.shape)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [shapes[i] for i in range(len(modules))]


def _convert(
    module: nn.Module,
    copies: list[nn.Module],
    layout: str,
    in_shape: tuple[int, ...],
    k: int,
) -> StackedLayer | None:
    kind = type(module).__name__
    if isinstance(module, nn.Identity):
        return None
    if isinstance(module, nn.Linear):
        if layout == CHANNELS or len(in_shape) != 1:
            raise NotStackableError(
                f"{kind} gets inputs of shape {in_shape} per example; the vectorized engine "
                "needs one vector per example (put Flatten before it)"
            )
        return stacked.Linear(_tensors(copies, "weight"), _biases(copies), layout)
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or len(in_shape) != 3:
            raise NotStackableError(
                f"{kind} with padding_mode={module.padding_mode!r} on inputs of shape "
                f"{in_shape}: the vectorized engine stacks zero-padded 2-D convolutions"
            )
        return stacked.Conv2d(
            _tensors(copies, "weight"),
            _biases(copies),
            _pair(module.stride),
            _conv_padding(module),
            _pair(module.dilation),
            module.groups,
            layout,
        )
    activation = _activation(module)
    if activation is not None:
        return stacked.Elementwise(*activation, layout)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        if len(in_shape) != 3:
            raise NotStackableError(f"{kind} on inputs of shape {in_shape}: expected (C, H, W)")
        return stacked.Pool2d(*_pooling(module, in_shape), layout)
    if isinstance(module, nn.Flatten):
        if module.start_dim != 1 or module.end_dim != -1:
            raise NotStackableError(
                f"Flatten(start_dim={module.start_dim}, end_dim={module.end_dim}): the vectorized "
                "engine stacks Flatten() over whole examples"
            )
        return stacked.Flatten(layout, k)
    if type(module) is nn.Dropout:
        return stacked.Dropout(module.p, layout, k)
    if isinstance(module, (nn.LogSoftmax, nn.Softmax)):
        if layout != TRIALS or len(in_shape) != 1 or module.dim not in (1, -1):
            raise NotStackableError(
                f"{kind}(dim={module.dim}) on inputs of shape {in_shape}: the vectorized "
                "engine stacks it over the classes of a (batch, classes) output"
            )
        return stacked.LogSoftmax(log=isinstance(module, nn.LogSoftmax))
    raise NotStackableError(f"{kind} is not a layer the vectorized engine stacks ({SUPPORTED})")


def _tensors(copies: list[nn.Module], name: str) -> list[torch.Tensor]:
    """Parameter ``name`` of each copy, detached."""
    found = [getattr(c, name) for c in copies]
    return [t.detach() for t in found if isinstance(t, torch.Tensor)]


def _biases(copies: list[nn.Module]) -> list[torch.Tensor] | None:
    return _tensors(copies, "bias") if getattr(copies[0], "bias", None) is not None else None


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[-1])


def _conv_padding(module: nn.Conv2d) -> tuple[int, int]:
    padding = module.padding
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        total = [
            d * (k - 1)
            for d, k in zip(_pair(module.dilation), _pair(module.kernel_size), strict=True)
        ]
        if any(t % 2 for t in total) or _pair(module.stride) != (1, 1):
            raise NotStackableError(
                "Conv2d(padding='same') with an even kernel pads unevenly; give the padding "
                "as numbers"
            )
        return total[0] // 2, total[1] // 2
    return _pair(padding)


def _pooling(module: nn.Module, in_shape: tuple[int, ...]) -> tuple[Callable, Callable]:  # type: ignore[type-arg]
    if isinstance(module, nn.MaxPool2d):
        if module.return_indices:
            raise NotStackableError("MaxPool2d(return_indices=True) returns a tuple")
        kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        padding, dilation, ceil = _pair(module.padding), _pair(module.dilation), module.ceil_mode
        return (
            lambda x: aten.max_pool2d_with_indices(x, kernel, stride, padding, dilation, ceil),
            lambda g, x, indices: aten.max_pool2d_with_indices_backward(
                g, x, kernel, stride, padding, dilation, ceil, indices
            ),
        )
    if isinstance(module, nn.AvgPool2d):
        kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        padding, ceil = _pair(module.padding), module.ceil_mode
        include, divisor = module.count_include_pad, module.divisor_override
        return (
            lambda x: (aten.avg_pool2d(x, kernel, stride, padding, ceil, include, divisor), None),
            lambda g, x, _: aten.avg_pool2d_backward(
                g, x, kernel, stride, padding, ceil, include, divisor
            ),
        )
    assert isinstance(module, nn.AdaptiveAvgPool2d)
    wanted = module.output_size
    pair = (wanted, wanted) if isinstance(wanted, int) or wanted is None else tuple(wanted)
    size = [int(s) if s is not None else in_shape[1 + i] for i, s in enumerate(pair)]
    return (
        lambda x: (aten._adaptive_avg_pool2d(x, size), None),
        lambda g, x, _: aten._adaptive_avg_pool2d_backward(g, x),
    )
