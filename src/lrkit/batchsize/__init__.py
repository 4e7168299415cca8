"""Which batch size: the largest that fits (``ceiling``), the step time at each size
(``throughput``), the gradient noise scale, and McCandlish et al.'s (2018) model of steps and
examples against batch size (``model``) give a prediction for the user's budget; the
learning-rate race (``lrkit.advise``) at it and its neighbours measures the outcome
(``driver``: ``advise_batch_size``).

The torch-free parts (``model``, ``settings``, ``result``) import no torch; ``ceiling``,
``throughput`` and ``driver`` load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrkit.batchsize.model import MODES
from lrkit.batchsize.settings import BatchSettings, CeilingSettings

if TYPE_CHECKING:
    from lrkit.batchsize.ceiling import find_ceiling
    from lrkit.batchsize.driver import advise_batch_size

__all__ = ["MODES", "BatchSettings", "CeilingSettings", "advise_batch_size", "find_ceiling"]


def __getattr__(name: str) -> Any:
    if name == "advise_batch_size":
        from lrkit.batchsize.driver import advise_batch_size

        return advise_batch_size
    if name == "find_ceiling":
        from lrkit.batchsize.ceiling import find_ceiling

        return find_ceiling
    raise AttributeError(f"module 'lrkit.batchsize' has no attribute {name!r}")
