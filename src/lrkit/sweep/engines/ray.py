"""Sweeps on Ray: each stack of trials of one batch size (or each trial, where the model
cannot be stacked) is a Ray task with its resource request, on a local Ray instance or a
cluster (``--address``).

The driver stays the only writer of the store: a task returns its trials' outcomes, and the
driver commits them one transaction per trial as tasks finish. A task whose worker process
dies is run again by Ray (``max_retries``); since outcomes only come back when a task ends, a
trial is never lost and never stored twice, and a resumed sweep runs exactly what is missing.
Ray is an optional extra: ``pip install 'lrkit[ray]'``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.training.loop import TrialOutcome
from lrkit.workload import Workload

INSTALL_HINT = "pip install 'lrkit[ray]'"
MAX_RETRIES = 3
"""Runs of a task after its worker died (Ray's retries on system failures)."""

Splits = tuple[TensorData, TensorData, TensorData | None]
Finished = list[tuple[TrialKey, TrialOutcome]]


def require_ray() -> Any:
    """The ``ray`` module, or the error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise LrkitValueError(
            f"the ray engine needs Ray: {INSTALL_HINT}",
            cli_message=f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}",
        ) from None
    return ray


def train_task(
    definition: SweepDefinition,
    work: Workload,
    data: Splits,
    keys: Sequence[TrialKey],
    stacked: bool,
    device_name: str,
) -> Finished:
    """What a Ray task runs: one stack with the vectorized engine, or one trial with the
    plain loop; the outcomes, in the order of ``keys``."""
    from lrkit.sweep.runner import build_stack, train_one

    device = torch.device(device_name)
    on_device = (
        data[0].to(device),
        data[1].to(device),
        data[2].to(device) if data[2] is not None else None,
    )
    if not stacked:
        return [(key, train_one(definition, work, on_device, device, key)) for key in keys]
    from lrkit.training.vectorized.loop import StackedRun

    models, trials = build_stack(definition, work, len(data[0]), device, keys)
    return list(zip(keys, StackedRun(models, trials, work.loss_fn, *on_device).run(), strict=True))


def run_on_ray(
    definition: SweepDefinition,
    work: Workload,
    data: Splits,
    device: torch.device,
    groups: Sequence[Sequence[TrialKey]],
    stacked: bool,
    address: str | None,
    on_start: Callable[[Sequence[TrialKey]], None],
    on_done: Callable[[TrialKey, TrialOutcome], None],
) -> None:
    """Submit every group as a task and hand each outcome to ``on_done`` as tasks finish.

    Without ``address`` (and with no Ray already running in this process) a local instance
    is started for the sweep and stopped after it."""
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        # Local workers import the user's modules (--model pkg:factory) as the driver does.
        paths = [p for p in sys.path if p] + [os.getcwd()]
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}},
        )
    try:
        task = ray.remote(train_task).options(
            num_cpus=1,
            num_gpus=1 if device.type == "cuda" else 0,
            max_retries=MAX_RETRIES,
            retry_exceptions=False,
        )
        shared = [ray.put(definition), ray.put(work), ray.put(data)]
        running = {}
        for keys in groups:
            on_start(keys)
            running[task.remote(*shared, list(keys), stacked, str(device))] = keys
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                running.pop(ref)
                for key, outcome in ray.get(ref):
                    on_done(key, outcome)
    finally:
        if started_here:
            ray.shutdown()
