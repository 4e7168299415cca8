"""``lrkit advise``'s race: :func:`~lrkit.advise.driver.advise` on a workload named by the
command line's options, its models made on one device, the advice named by the workload."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lrkit.advise import driver
from lrkit.advise.race import OnRaceCheck
from lrkit.advise.result import Advice
from lrkit.advise.settings import MIN_VAL_EXAMPLES, AdviseSettings
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.workload import Workload, WorkloadSource


@dataclass(frozen=True)
class RaceWorkload:
    """A workload a race can run on: tensors to train on and to judge on, and the device its
    models are made on."""

    work: Workload
    train: TensorData
    val: TensorData
    device: torch.device

    def make_model(self, seed: int) -> nn.Module:
        return self.work.make_model(seed).to(self.device)

    def named(self, advice: Advice) -> Advice:
        """``advice`` with the workload's model and data names."""
        return dataclasses.replace(advice, model=self.work.model_name, data=self.work.data_name)


def load_race_workload(
    source: WorkloadSource, device: torch.device, notify: Callable[[str], None]
) -> RaceWorkload:
    """The workload ``source`` names, with the validation examples a race needs to judge on;
    refused unless its data are tensors with a validation part."""
    work = source.load(notify, min_val=MIN_VAL_EXAMPLES)
    if not isinstance(work.train, TensorData) or work.val is None:
        raise LrkitValueError(
            "--data: advise needs tensor data (TensorData or (x, y)) with a validation part"
        )
    return RaceWorkload(work, work.train, work.val, device)


def advise_workload(
    race: RaceWorkload, settings: AdviseSettings, on_check: OnRaceCheck, address: str | None
) -> Advice:
    """The advice of a race on ``race`` as ``settings`` say (``address``: the Ray cluster for
    the ray engine), named by the workload."""
    advice = driver.advise(
        race.make_model,
        race.train,
        race.val,
        settings,
        loss_fn=race.work.loss_fn,
        on_check=on_check,
        address=address,
    )
    return race.named(advice)
