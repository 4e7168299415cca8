"""``lrkit advise`` without ``--batch-size``: :func:`~lrkit.batchsize.driver.advise_batch_size`
on a workload loaded for racing (``advise.on_workload``), the advice and its races named by
the workload."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from lrkit.advise.on_workload import RaceWorkload
from lrkit.advise.race import OnRaceCheck
from lrkit.batchsize.driver import advise_batch_size
from lrkit.batchsize.result import BatchAdvice
from lrkit.batchsize.settings import BatchSettings


def advise_batch_size_workload(
    race: RaceWorkload,
    settings: BatchSettings,
    on_stage: Callable[[str], None],
    on_check: OnRaceCheck,
    address: str | None,
) -> BatchAdvice:
    """The batch size and learning rate for the budget of ``settings`` on ``race``
    (``on_stage`` hears each stage begin, ``on_check`` each race's checks; ``address``: the
    Ray cluster for the ray engine), named by the workload."""
    found = advise_batch_size(
        race.make_model,
        race.train,
        race.val,
        settings,
        loss_fn=race.work.loss_fn,
        on_stage=on_stage,
        on_check=on_check,
        address=address,
    )
    races = tuple(dataclasses.replace(r, advice=race.named(r.advice)) for r in found.races)
    work = race.work
    return dataclasses.replace(found, races=races, model=work.model_name, data=work.data_name)
