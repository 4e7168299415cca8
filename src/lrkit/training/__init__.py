"""The training layer (PyTorch). Its modules import torch; this package itself does not, so
that the CLI can check options before paying for ``import torch``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lrkit.training.lr_scheduler import ScheduleLR

__all__ = ["ScheduleLR"]


def __getattr__(name: str) -> Any:
    if name == "ScheduleLR":
        from lrkit.training.lr_scheduler import ScheduleLR

        return ScheduleLR
    raise AttributeError(f"module 'lrkit.training' has no attribute {name!r}")
