"""Learning-rate schedules: pure functions of the iteration, ``sched(t) -> lr``.

No torch here: a numpy or JAX user can call these. :class:`lrkit.training.ScheduleLR` drives
a PyTorch optimizer from any of them.
"""

from lrkit.schedules.annealing import constant, cosine, cosine_restarts, linear
from lrkit.schedules.base import Schedule
from lrkit.schedules.batch_size import (
    BatchSizePlan,
    BatchSizeSchedule,
    batch_size_steps,
    increase_batch_instead_of_decay,
)
from lrkit.schedules.caffe import exp, fixed, inv, multistep, poly, sigmoid, step
from lrkit.schedules.compose import join, warmup
from lrkit.schedules.curve import ScheduleCurve, sample
from lrkit.schedules.cyclical import cyclic, one_cycle
from lrkit.schedules.registry import SCHEDULES, ScheduleInfo, create, describe, schedule_names
from lrkit.schedules.stable_decay import cooldown_start, wsd

__all__ = [
    "SCHEDULES",
    "BatchSizePlan",
    "BatchSizeSchedule",
    "Schedule",
    "ScheduleCurve",
    "ScheduleInfo",
    "batch_size_steps",
    "constant",
    "cooldown_start",
    "cosine",
    "cosine_restarts",
    "create",
    "cyclic",
    "describe",
    "exp",
    "fixed",
    "increase_batch_instead_of_decay",
    "inv",
    "join",
    "linear",
    "multistep",
    "one_cycle",
    "poly",
    "sample",
    "schedule_names",
    "sigmoid",
    "step",
    "warmup",
    "wsd",
]
