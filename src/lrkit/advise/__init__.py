"""``lrkit advise``: which learning rate will train this model best in this budget, measured
rather than read off a curve. A range test proposes candidates (every rule's suggestion and a
geometric ladder around the default), a race on the user's budget decides between them
(successive halving, Jamieson & Talwalkar 2016; Li et al. 2018), and each candidate is judged
by the value its curve predicts at the full budget, not by where it stands part-way, so that
the race does not favour the large learning rates that lead early and lose late.

The torch-free parts (``settings``, ``candidates``, ``predict``, ``plan``, ``result``) import
no torch; ``driver`` (``advise``) loads it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrkit.advise.settings import METRICS, AdviseSettings

if TYPE_CHECKING:
    from lrkit.advise.driver import advise

__all__ = ["METRICS", "AdviseSettings", "advise"]


def __getattr__(name: str) -> Any:
    if name == "advise":
        from lrkit.advise.driver import advise

        return advise
    raise AttributeError(f"module 'lrkit.advise' has no attribute {name!r}")
