"""Stacked layers: K copies of a layer, one per trial, run as one operation.

Each layer keeps its parameters stacked along a trial axis and has a hand-written backward
pass built from the ATen backward kernels that autograd itself would call (so the numbers
match the one-trial-at-a-time loop). That skips autograd's per-operation bookkeeping, which
for a small network on a CPU costs more than the arithmetic.

Activations travel in one of three layouts:

- ``shared`` (B, ...): the same input for every trial (the data, before any parameter);
- ``trials`` (K, B, ...): one slice per trial;
- ``channels`` (B, K*C, H, W): trials side by side along the channel axis, so that one
  grouped convolution (``groups = K``) runs every trial's convolution, and pooling and
  element-wise layers need no change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

aten = torch.ops.aten

SHARED, TRIALS, CHANNELS = "shared", "trials", "channels"


@dataclass
class StackedParameter:
    """A parameter of K trials; ``trial_axis`` is the axis that indexes them."""

    tensor: torch.Tensor
    trial_axis: int
    grad: torch.Tensor | None = None

    def by_trial_shape(self) -> tuple[int, ...]:
        """The shape a (K,) per-trial factor takes to broadcast against ``tensor``."""
        shape = [1] * self.tensor.dim()
        shape[self.trial_axis] = -1
        return tuple(shape)

    def keep(self, trials: torch.Tensor) -> None:
        self.tensor = self.tensor.index_select(self.trial_axis, trials)
        self.grad = None


class StackedLayer:
    """One layer of K trials: ``forward`` keeps what ``backward`` needs."""

    params: tuple[StackedParameter, ...] = ()
    out_layout: str = TRIALS

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, grad: torch.Tensor, need_input_grad: bool) -> torch.Tensor | None:
        """Set the parameters' ``grad``; return the gradient of the input when asked."""
        raise NotImplementedError

    def named_params(self) -> tuple[tuple[str, StackedParameter], ...]:
        """The parameters, named as in the original module's ``state_dict``."""
        return ()

    def trial_state(self, k: int) -> dict[str, torch.Tensor]:
        """Trial ``k``'s parameters, named as in the original module's ``state_dict``."""
        return {name: p.tensor.select(p.trial_axis, k) for name, p in self.named_params()}

    def keep(self, trials: torch.Tensor) -> None:
        """Keep only the trials at the sorted indices ``trials`` (drop diverged ones)."""
        for p in self.params:
            p.keep(trials)


class WeightedLayer(StackedLayer):
    """A layer with a weight and an optional bias, each stacked as (K, *its shape)."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor] | None):
        self.weight = StackedParameter(torch.stack(weights).contiguous(), 0)
        self.bias = (
            StackedParameter(torch.stack(biases).contiguous(), 0) if biases is not None else None
        )
        self.params = (self.weight,) if self.bias is None else (self.weight, self.bias)
        self.x: torch.Tensor | None = None

    @property
    def trials(self) -> int:
        return int(self.weight.tensor.shape[0])

    def named_params(self) -> tuple[tuple[str, StackedParameter], ...]:
        named = (("weight", self.weight),)
        return named if self.bias is None else (*named, ("bias", self.bias))


class Linear(WeightedLayer):
    """y = x W_k^T + b_k for each trial k (``nn.Linear``).

    The weights keep PyTorch's layout, (K, out, in), and are used through transposed views
    as ``F.linear`` uses them, so the matrix products take the same kernels and round the
    same way. On a shared input one (B, in) @ (in, K*out) product serves every trial; on
    per-trial inputs it is a batched product over K."""

    def __init__(
        self, weights: list[torch.Tensor], biases: list[torch.Tensor] | None, in_layout: str
    ):
        super().__init__(weights, biases)  # (K, out, in), (K, out)
        self.shared_input = in_layout == SHARED

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        w = self.weight.tensor
        k, out, inputs = w.shape
        self.x = x
        if self.shared_input:
            flat = w.view(k * out, inputs).t()
            if self.bias is None:
                y = x @ flat
            else:
                y = torch.addmm(self.bias.tensor.view(k * out), x, flat)
            return y.view(x.shape[0], k, out).transpose(0, 1)
        if x.shape[1] == 1:
            # One example: PyTorch takes a matrix-vector path that a batched product does
            # not reproduce bit for bit, so go trial by trial (rare: a last batch of one).
            if self.bias is None:
                return torch.stack([x[i] @ w[i].t() for i in range(k)])
            bias = self.bias.tensor
            return torch.stack([torch.addmm(bias[i], x[i], w[i].t()) for i in range(k)])
        if self.bias is None:
            return torch.bmm(x, w.transpose(1, 2))
        return torch.baddbmm(self.bias.tensor.unsqueeze(1), x, w.transpose(1, 2))

    def backward(self, grad: torch.Tensor, need_input_grad: bool) -> torch.Tensor | None:
        x = self.x
        assert x is not None
        w = self.weight.tensor
        k, out, inputs = w.shape
        if self.shared_input:
            flat = grad.transpose(0, 1).reshape(x.shape[0], k * out)
            self.weight.grad = (flat.t() @ x).view(k, out, inputs)
            if self.bias is not None:
                self.bias.grad = flat.sum(0).view(k, out)
            return None
        self.weight.grad = torch.bmm(grad.transpose(1, 2), x)
        if self.bias is not None:
            self.bias.grad = grad.sum(1)
        return torch.bmm(grad, w) if need_input_grad else None


class Conv2d(WeightedLayer):
    """``nn.Conv2d`` for K trials as one convolution with K times the groups.

    Output channels of trial k are k*O .. (k+1)*O - 1 (the ``channels`` layout)."""

    out_layout = CHANNELS

    def __init__(
        self,
        weights: list[torch.Tensor],
        biases: list[torch.Tensor] | None,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        groups: int,
        in_layout: str,
    ):
        super().__init__(weights, biases)  # (K, O, C/g, kh, kw), (K, O)
        self.stride, self.padding, self.dilation = list(stride), list(padding), list(dilation)
        self.groups = groups
        self.in_layout = in_layout
        # A shared input with groups > 1 is repeated per trial, so that the grouped
        # convolution's groups line up with each trial's channels.
        self.per_trial_input = in_layout != SHARED or groups > 1

    def _groups(self) -> int:
        return self.groups * self.trials if self.per_trial_input else self.groups

    def _flat(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        w = self.weight.tensor
        flat_w = w.view(w.shape[0] * w.shape[1], *w.shape[2:])
        flat_b = self.bias.tensor.view(-1) if self.bias is not None else None
        return flat_w, flat_b

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if self.in_layout == SHARED and self.per_trial_input:
            b = x.shape[0]
            x = x.unsqueeze(1).expand(b, self.trials, *x.shape[1:]).reshape(b, -1, *x.shape[2:])
        elif self.in_layout == TRIALS:  # (K, B, C, H, W) -> (B, K*C, H, W)
            k, b = x.shape[:2]
            x = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])
        self.x = x
        w, bias = self._flat()
        return F.conv2d(x, w, bias, self.stride, self.padding, self.dilation, self._groups())

    def backward(self, grad: torch.Tensor, need_input_grad: bool) -> torch.Tensor | None:
        x = self.x
        assert x is not None
        w, bias = self._flat()
        need_input_grad = need_input_grad and self.in_layout != SHARED
        gx, gw, gb = aten.convolution_backward(
            grad,
            x,
            w,
            [w.shape[0]] if bias is not None else None,
            self.stride,
            self.padding,
            self.dilation,
            False,
            [0, 0],
            self._groups(),
            [need_input_grad, True, bias is not None],
        )
        self.weight.grad = gw.view(self.weight.tensor.shape)
        if self.bias is not None:
            self.bias.grad = gb.view(self.bias.tensor.shape)
        if not need_input_grad:
            return None
        if self.in_layout == TRIALS:  # back to (K, B, C, H, W)
            b, kc = gx.shape[:2]
            k = self.trials
            return cast(torch.Tensor, gx.view(b, k, kc // k, *gx.shape[2:]).transpose(0, 1))
        return cast(torch.Tensor, gx)


class Elementwise(StackedLayer):
    """An activation applied element by element; any layout in, the same layout out.

    ``backward_of(grad, x, y)`` is the ATen kernel autograd uses for it."""

    def __init__(
        self,
        forward_of: Callable[[torch.Tensor], torch.Tensor],
        backward_of: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        layout: str,
    ):
        self.forward_of, self.backward_of = forward_of, backward_of
        self.out_layout = layout
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        self.x, self.y = x, self.forward_of(x)
        return self.y

    def backward(self, grad: torch.Tensor, need_input_grad: bool) -> torch.Tensor | None:
        assert self.x is not None and self.y is not None
        return self.backward_of(grad, self.x, self.y)


class Pool2d(StackedLayer):
    """Max, average or adaptive-average pooling, per channel: the stacked trials are more
    channels (``channels`` layout) or more examples (``trials`` layout, folded into B)."""

    def __init__(
        self,
        forward_of: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
        backward_of: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
        layout: str,
    ):
        self.forward_of, self.backward_of = forward_of, backward_of
        self.out_layout = layout
        self.x: torch.Tensor | None = None
        self.saved: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        lead = x.shape[:-3]
        folded = x.reshape(-1, *x.shape[-3:])
        y, self.saved = self.forward_of(folded)
        self.x = folded
        return y.view(*lead, *y.shape[1:])

    def backward(self, grad: torch.Tensor, need_input_grad: bool) -> torch.Tensor | None:
        assert self.x is not None
        lead = grad.shape[:-3]
        g = self.backward_of(grad.reshape(-1, *grad.shape[-3:]), self.x, self.saved)
        return g.view(*lead, *g.shape[1:])


class Flatten(StackedLayer):
    """``nn.Flatten()`` (dims 1 to -1 of each example); from ``channels`` it also moves the
    trial axis to the front."""

    def __init__(self, in_layout: str, trials: int):
        self.in_layout = in_layout
        self.out_layout = SHARED if in_layout == SHARED else TRIALS
        self.k = trials
        self.shape: torch.Size | None = None

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        self.shape = x.shape
        if self.in_layout == SHARED:
            return x.flatten(1)
        if self.in_layout == TRIALS:
            return x.flatten(2)
        b = x.shape[0]
        return x.reshape(b, self.k, -1).transpose(0, 1)

    def backward(self, grad: torch.Tensor, need_input_grad: bool) -> torch.Tensor | None:
        assert self.shape is not None
        if self.in_layout == CHANNELS:
            return grad.transpose(0, 1).reshape(self.shape)
        return grad.reshape(self.shape)

    def keep(self, trials: torch.Tensor) -> None:
        self.k = len(trials)


class Dropout(StackedLayer):
    """``nn.Dropout(p)``: every trial draws its own mask (from the global RNG)."""

    def __init__(self, p: float, layout: str, trials: int):
        self.p = p
        self.in_layout = layout
        self.out_layout = TRIALS if layout == SHARED else layout
        self.k = trials
        self.mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if self.in_layout == SHARED:
            x = x.expand(self.k, *x.shape)
        if not training or self.p == 0.0:
            self.mask = None
            return x
        y, self.mask = aten.native_dropout(x, self.p, True)
        return cast(torch.Tensor, y)

    def backward(self, grad: torch.Tensor, need_input_grad: bool) -> torch.Tensor | None:
        if self.mask is None:
            return grad
        return cast(
            torch.Tensor, aten.native_dropout_backward(grad, self.mask, 1.0 / (1.0 - self.p))
        )

    def keep(self, trials: torch.Tensor) -> None:
        self.k = len(trials)


class LogSoftmax(StackedLayer):
    """``nn.LogSoftmax`` / ``nn.Softmax`` over the classes of a (B, C) output."""

    def __init__(self, log: bool):
        self.log = log
        self.y: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        self.y = torch.log_softmax(x, -1) if self.log else torch.softmax(x, -1)
        return self.y

    def backward(self, grad: torch.Tensor, need_input_grad: bool) -> torch.Tensor | None:
        assert self.y is not None
        if self.log:
            return cast(
                torch.Tensor, aten._log_softmax_backward_data(grad, self.y, -1, self.y.dtype)
            )
        return cast(torch.Tensor, aten._softmax_backward_data(grad, self.y, -1, self.y.dtype))
