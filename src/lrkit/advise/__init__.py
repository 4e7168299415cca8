"""``lrkit advise``: which learning rate will train this model best in this budget, measured
rather than read off a curve. A range test proposes candidates (a geometric ladder around the
default rule's suggestion, and the other rules' suggestions near it); a race on the user's
budget decides between them (successive halving, Jamieson & Talwalkar 2016; Li et al. 2018),
judged on the validation metric where each candidate stands, at no fewer than a sixth and
then half of the budget, and extended beyond an end of the candidates where the leader is
there (``race``); for Adam and AdamW the winner is scaled from half the budget to the whole
(``horizon``). How often its answer is right: ``bench/bench_suggest.py``.

The torch-free parts (``settings``, ``candidates``, ``plan``, ``horizon``, ``result``)
import no torch;
``driver`` (``advise``) loads it on first use.
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
