"""SGD for K stacked trials, each with its own learning rate, momentum and weight decay.

The update is PyTorch's ``torch.optim.SGD`` (dampening 0, no Nesterov), trial by trial:

    d = g + wd_k * w;   buf = mu_k * buf + d   (buf starts at 0, so its first value is d);
    w = w - lr_k * buf
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lrkit.training.vectorized.layers import StackedParameter


class StackedSGD:
    """Per-trial SGD over the parameters of a stacked network."""

    def __init__(
        self,
        params: Sequence[StackedParameter],
        lrs: Sequence[float],
        momenta: Sequence[float],
        weight_decays: Sequence[float],
    ):
        self.params = list(params)
        device = self.params[0].tensor.device
        dtype = self.params[0].tensor.dtype
        self.neg_lr = -torch.tensor(lrs, dtype=dtype, device=device)
        self.momentum = torch.tensor(momenta, dtype=dtype, device=device)
        self.weight_decay = torch.tensor(weight_decays, dtype=dtype, device=device)
        self.uses_momentum = any(m != 0.0 for m in momenta)
        self.uses_weight_decay = any(w != 0.0 for w in weight_decays)
        self.buffers = (
            [torch.zeros_like(p.tensor) for p in self.params] if self.uses_momentum else []
        )
        self._views()

    def _views(self) -> None:
        shapes = [p.by_trial_shape() for p in self.params]
        self._neg_lr = [self.neg_lr.view(s) for s in shapes]
        self._momentum = [self.momentum.view(s) for s in shapes]
        self._weight_decay = [self.weight_decay.view(s) for s in shapes]

    def set_lrs(self, lrs: Sequence[float]) -> None:
        """This iteration's learning rate of each trial."""
        self.neg_lr.copy_(torch.tensor(lrs, dtype=self.neg_lr.dtype)).neg_()

    def step(self) -> None:
        for i, p in enumerate(self.params):
            d = p.grad
            assert d is not None
            if self.uses_weight_decay:
                d = d.addcmul(p.tensor, self._weight_decay[i])
            if self.uses_momentum:
                d = self.buffers[i].mul_(self._momentum[i]).add_(d)
            p.tensor.addcmul_(d, self._neg_lr[i])
            p.grad = None

    def trial_momentum(self, k: int) -> list[torch.Tensor] | None:
        """Trial ``k``'s momentum buffers in the order of ``params`` (None without momentum)."""
        if not self.uses_momentum or float(self.momentum[k]) == 0.0:
            return None
        return [
            b.select(p.trial_axis, k).clone()
            for b, p in zip(self.buffers, self.params, strict=True)
        ]

    def load_momentum(self, k: int, buffers: Sequence[torch.Tensor]) -> None:
        """Set trial ``k``'s momentum buffers (in the order of ``params``)."""
        if not self.uses_momentum:
            return
        with torch.no_grad():
            for b, p, value in zip(self.buffers, self.params, buffers, strict=True):
                b.select(p.trial_axis, k).copy_(value)

    def keep(self, trials: torch.Tensor) -> None:
        """Keep only the trials at ``trials`` (after the network has dropped the others)."""
        self.neg_lr = self.neg_lr.index_select(0, trials)
        self.momentum = self.momentum.index_select(0, trials)
        self.weight_decay = self.weight_decay.index_select(0, trials)
        if self.uses_momentum:
            self.buffers = [
                b.index_select(p.trial_axis, trials)
                for b, p in zip(self.buffers, self.params, strict=True)
            ]
        self._views()
