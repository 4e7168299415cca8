"""The training layer (PyTorch)."""

from lrkit.training.lr_scheduler import ScheduleLR

__all__ = ["ScheduleLR"]
