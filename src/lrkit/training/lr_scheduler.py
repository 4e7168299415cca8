"""A thin PyTorch ``LRScheduler`` that drives any optimizer from an lrkit schedule.

The schedule holds all the logic; this class only writes its value into the optimizer's
param groups. Group 0 gets ``schedule(t)`` exactly; every other group keeps its ratio to
group 0 as given by the groups' initial learning rates (so a head trained at 10x the body's
rate stays at 10x).
"""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrkit.errors import LrkitValueError
from lrkit.schedules.base import Schedule


class ScheduleLR(LRScheduler):
    """Set each param group's lr to ``schedule(t) * initial_lr[g] / initial_lr[0]``.

    ``t`` is the number of ``step()`` calls so far (0 right after construction), as for
    PyTorch's own schedulers. ``state_dict`` holds the step count (not the schedule, which is
    code): rebuild the scheduler with the same schedule, then ``load_state_dict`` to resume.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        schedule: an lrkit schedule, ``sched(t) -> lr``.
        last_epoch: as for PyTorch's schedulers; -1 starts a new run.
    """

    def __init__(self, optimizer: Optimizer, schedule: Schedule, last_epoch: int = -1) -> None:
        groups = optimizer.param_groups
        key = "lr" if last_epoch == -1 else "initial_lr"
        reference = float(groups[0].get(key, groups[0]["lr"]))
        if reference <= 0:
            raise LrkitValueError(
                "ScheduleLR needs param group 0 to start with an lr > 0: other groups are "
                f"scaled by their ratio to it (got {reference})"
            )
        self.schedule = schedule
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        lr = self.schedule(self.last_epoch)
        groups = self.optimizer.param_groups
        reference = float(groups[0]["initial_lr"])
        return [lr * float(g["initial_lr"]) / reference for g in groups]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "schedule")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "schedule"})
