"""lrkit: which learning rate and which batch size to train with, and why.

``import lrkit`` stays light: torch and matplotlib load only when a part that needs them is
used. The range test is :func:`lrkit.find_lr` (ask/tell core in :mod:`lrkit.rangetest.core`); the
schedules (pure functions) are in :mod:`lrkit.schedules`, and their PyTorch adapter is
:class:`lrkit.training.ScheduleLR`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from lrkit import schedules
from lrkit.errors import InvalidParameterError, LrkitValueError

if TYPE_CHECKING:
    from lrkit.rangetest.find import find_lr
    from lrkit.training.lr_scheduler import ScheduleLR

try:
    __version__ = version("lrkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "InvalidParameterError",
    "LrkitValueError",
    "ScheduleLR",
    "__version__",
    "find_lr",
    "schedules",
]


def __getattr__(name: str) -> Any:
    # The parts that need torch load on first use.
    if name == "ScheduleLR":
        from lrkit.training.lr_scheduler import ScheduleLR

        return ScheduleLR
    if name == "find_lr":
        from lrkit.rangetest.find import find_lr

        return find_lr
    raise AttributeError(f"module 'lrkit' has no attribute {name!r}")
