"""``find_lr``: the range test on any PyTorch model, in narrowing rounds, with suggestions.

Each round restarts from the same initial weights, optimizer state and data order; after the
last round the model, the optimizer, the global RNGs and a ``DataLoader``'s own RNG are
restored bitwise (``training.state.preserved``), so the caller's training cannot tell that
the test ran.

Inside a ``torch.distributed`` job, on a ``DistributedDataParallel`` model, the test is the
one a single process runs with ``batch_size`` x world examples a step: every rank reads the
same global batches and trains on its share of each (``training.distributed``); the losses
are averaged over the ranks before the test smooths them and decides to stop, so all ranks
run the same lrs and stop together; each rank restores its own copy of the state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.rangetest.batches import DataLike, as_tensor_data, batch_source, rank_local
from lrkit.rangetest.core import RoundRecord, Step
from lrkit.rangetest.programs import LrProgram, narrow
from lrkit.rangetest.reading import combine_rounds, program_index, read_round
from lrkit.rangetest.result import RangeTestResult, RoundResult
from lrkit.rangetest.rounds import OnStep, run_round
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.rangetest.stacked_rounds import run_stacked_round, stacking_problem
from lrkit.sweep.engines.names import SEQUENTIAL, VECTORIZED, may_stack
from lrkit.training import distributed
from lrkit.training import state as training_state
from lrkit.training.device import model_device
from lrkit.training.evaluate import LossFn
from lrkit.training.fit_check import check_finite, check_model_fits
from lrkit.training.outputs import default_loss

OnRoundStep = Callable[[int, Step, int], None]
"""Progress callback: (round index, the step just run, iterations in this round's program)."""
RunRound = Callable[[int, LrProgram], list[RoundRecord]]
"""(round index, program) -> one record per repeat."""


def find_lr(
    model: nn.Module,
    data: DataLike,
    settings: RangeTestSettings | None = None,
    *,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    eval_data: TensorData | tuple[torch.Tensor, torch.Tensor] | None = None,
    on_step: OnRoundStep | None = None,
) -> RangeTestResult:
    """Run the learning-rate range test on ``model`` and suggest a learning rate.

    Args:
        model: any ``nn.Module``; it is trained on its own device and restored afterwards.
        data: training data: a ``TensorData``, an ``(inputs, targets)`` pair of tensors (both
            cut into batches by index on the model's device), a ``Dataset`` or a ``DataLoader``.
            On a DDP model every rank holds the same data and trains on its share of each
            global batch (a ``DataLoader``'s batches are global batches, unless its sampler
            is a ``DistributedSampler``: then they are this rank's already).
        settings: the program, rounds, repeats, engine, smoothing, ... (``RangeTestSettings``;
            every field has a default).
        loss_fn: ``loss(output, target)``, mean over the batch; default cross-entropy, or
            the model's own loss for batches of dicts with ``labels``
            (``training.outputs.default_loss``).
        optimizer: default plain SGD (the textbook's); any optimizer works, its param groups'
            lr ratios are kept.
        eval_data: a fixed set whose loss is measured at the end of every hold.
        on_step: called after each iteration with (round index, step, iterations in the
            round's program times repeats), for progress bars.
    """
    started = time.perf_counter()
    settings = settings or RangeTestSettings()
    device = model_device(model)
    world = distributed.world_size() if distributed.is_ddp(model) else 1
    module = distributed.unwrap(model)
    if settings.amp and device.type != "cuda":
        raise LrkitValueError(
            "mixed precision (amp) needs a CUDA device", cli_message="--amp needs --device cuda"
        )
    program = settings.lr_program
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=program.lrs[0])
    make_batches = batch_source(data, settings.batch_size, device, world)
    evaluation = as_tensor_data(eval_data, device) if eval_data is not None else None
    tensors = as_tensor_data(data, device) if isinstance(data, (TensorData, tuple)) else None
    parts = {"training": tensors, "evaluation": evaluation}
    check_finite({part: d for part, d in parts.items() if d is not None})
    seeds = [settings.seed + r for r in range(settings.repeats)]

    with training_state.preserved(model, optimizer, data) as snapshot:
        first = next(make_batches(settings.seed))
        loss_fn = loss_fn or default_loss(first[0])  # dict batches: the model's own loss
        whole = [t.y for t in (tensors, evaluation) if t is not None]
        check_model_fits(module, loss_fn, first[0], first[1], targets=whole)
        reason = None
        if may_stack(settings.engine):
            example = tensors.x[:2] if tensors is not None else None
            reason = stacking_problem(model, optimizer, tensors, settings, example)
        stacked = may_stack(settings.engine) and reason is None

        def run_stacked(index: int, program: LrProgram) -> list[RoundRecord]:
            assert tensors is not None
            callback = _bind_round(on_step, index, program.num_iterations, 0)
            return run_stacked_round(
                model, optimizer, loss_fn, tensors, program, settings, evaluation, callback
            )

        def run_one_by_one(index: int, program: LrProgram) -> list[RoundRecord]:
            records = []
            for r, seed in enumerate(seeds):
                # Every round and repeat starts from the same weights, optimizer state and RNGs.
                training_state.restore(snapshot, model, optimizer)
                callback = _bind_round(on_step, index, program.num_iterations, r, len(seeds))
                batches = make_batches(seed)
                records.append(
                    run_round(
                        model, optimizer, loss_fn, batches, program, settings, evaluation, callback
                    )
                )
            return records

        results = narrowing_rounds(run_stacked if stacked else run_one_by_one, program, settings)

    suggestions = combine_rounds(results)
    by_repeat: tuple[float | None, ...] = ()
    if settings.repeats > 1:
        by_repeat = tuple(
            combine_rounds([read_round([r.records[i]], settings.curve) for r in results])[
                settings.suggestion
            ]
            for i in range(settings.repeats)
        )
    if isinstance(data, DataLoader):
        per_loader_batch = int(data.batch_size or 0)
        global_batch = per_loader_batch * world if rank_local(data) else per_loader_batch
    else:
        global_batch = settings.batch_size * world
    return RangeTestResult(
        model=type(module).__name__,
        data=type(data).__name__,
        batch_size=global_batch,
        device=str(device),
        rounds=tuple(results),
        suggestions=suggestions,
        method=settings.suggestion,
        suggested_lr=suggestions[settings.suggestion],
        seconds=time.perf_counter() - started,
        repeats=settings.repeats,
        engine=VECTORIZED if stacked else SEQUENTIAL,
        engine_reason=reason,
        suggested_lr_by_repeat=by_repeat,
        world_size=world,
    )


def narrowing_rounds(
    run: RunRound, program: LrProgram, settings: RangeTestSettings
) -> list[RoundResult]:
    """Round after round, each narrowed around the last one's turning point (the textbook's
    rounds), until ``settings.rounds`` or a round that finds no turn."""
    results: list[RoundResult] = []
    for index in range(settings.rounds):
        results.append(read_round(run(index, program), settings.curve))
        turn = results[-1].turning_point
        if index + 1 == settings.rounds or turn is None:
            break
        at = program_index(program, results[-1], turn.index)
        program = narrow(program, at, settings.points, settings.span)
    return results


def _bind_round(
    on_step: OnRoundStep | None, index: int, total: int, repeat: int, repeats: int = 1
) -> OnStep | None:
    """Progress over a round's repeats run one after another: repeat r's steps count after
    the r repeats before it."""
    if on_step is None:
        return None
    offset = repeat * total
    return lambda step: on_step(
        index, step._replace(iteration=step.iteration + offset), total * repeats
    )
