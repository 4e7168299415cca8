"""``find_lr``: the range test on any PyTorch model, in narrowing rounds, with suggestions.

Each round restarts from the same initial weights, optimizer state and data order; after the
last round the model, the optimizer and the global RNGs are restored bitwise, so the caller's
training cannot tell that the test ran.

Inside a ``torch.distributed`` job, on a ``DistributedDataParallel`` model, the test is the
one a single process runs with ``batch_size`` x world examples a step: every rank reads the
same global batches and trains on its share of each (``training.distributed``); the losses
are averaged over the ranks before the test smooths them and decides to stop, so all ranks
run the same lrs and stop together; each rank restores its own copy of the state.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lrkit import validation as check
from lrkit.data.tensors import BatchStream, TensorData
from lrkit.errors import LrkitValueError
from lrkit.rangetest.core import RoundRecord, Step
from lrkit.rangetest.programs import (
    DEFAULT_SEGMENTS,
    LrProgram,
    narrow,
    parse_segments,
    segments_program,
)
from lrkit.rangetest.result import RangeTestResult, RoundResult
from lrkit.rangetest.rounds import OnStep, RunnerBatches, RunnerSettings, run_round
from lrkit.rangetest.stacked_rounds import run_stacked_round, stacking_problem
from lrkit.rangetest.suggestions import (
    DEFAULT_SUGGESTION,
    SUGGESTIONS,
    find_turning_point,
    suggest_all,
)
from lrkit.training import distributed
from lrkit.training import state as training_state
from lrkit.training.evaluate import LossFn
from lrkit.training.vectorized import ENGINES

CURVES = ("auto", "eval", "mean", "smoothed")
DataLike = TensorData | tuple[torch.Tensor, torch.Tensor] | Dataset | DataLoader  # type: ignore[type-arg]
OnRoundStep = Callable[[int, Step, int], None]
"""Progress callback: (round index, the step just run, iterations in this round's program)."""


@dataclass(frozen=True)
class RoundsSettings:
    """How rounds narrow: each crosses ``span`` held rates either side of the previous round's
    turning point in about ``points`` linear steps, after the same lead-in (``programs.narrow``)."""

    rounds: int = 1
    points: int = 20
    span: int = 2


def default_program() -> LrProgram:
    """The textbook's first round (1e-4 .. 1.1 in stepped segments, each lr held 10 iterations)
    continued to 90, where the test stops once the loss diverges."""
    return segments_program(parse_segments(DEFAULT_SEGMENTS))


def find_lr(
    model: nn.Module,
    data: DataLike,
    *,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    batch_size: int = 16,
    program: LrProgram | str | None = None,
    rounds: int | RoundsSettings = 1,
    eval_data: TensorData | tuple[torch.Tensor, torch.Tensor] | None = None,
    curve: str = "auto",
    suggestion: str = DEFAULT_SUGGESTION,
    settings: RunnerSettings | None = None,
    seed: int = 0,
    on_step: OnRoundStep | None = None,
    model_name: str = "",
    data_name: str = "",
    repeats: int = 1,
    engine: str = "auto",
) -> RangeTestResult:
    """Run the learning-rate range test on ``model`` and suggest a learning rate.

    Args:
        model: any ``nn.Module``; it is trained on its own device and restored afterwards.
        data: training data: a ``TensorData``, an ``(inputs, targets)`` pair of tensors (both
            cut into batches by index on the model's device), a ``Dataset`` or a ``DataLoader``.
            On a DDP model every rank holds the same data and trains on its share of each
            global batch (a ``DataLoader``'s batches are global batches, unless its sampler
            is a ``DistributedSampler``: then they are this rank's already).
        loss_fn: ``loss(output, target)``, mean over the batch; default cross-entropy.
        optimizer: default plain SGD (the textbook's); any optimizer works, its param groups'
            lr ratios are kept.
        batch_size: examples per iteration (ignored for a ``DataLoader``); on a DDP model,
            per rank: each step reads a global batch of ``batch_size`` x world examples.
        program: an ``LrProgram`` or a segment string ``start:stop:step@hold,...``;
            default ``programs.DEFAULT_SEGMENTS``, the textbook's first round continued.
        rounds: how many rounds, or ``RoundsSettings``; each narrows around the turning point.
        eval_data: a fixed set whose loss is measured at the end of every hold.
        curve: which loss the suggestions read: auto (eval if measured, else the hold mean
            when holds are longer than one iteration, else the smoothed loss), eval, mean, smoothed.
        suggestion: the rule whose value is ``suggested_lr`` (see ``lrkit.rangetest.suggestions``).
        settings: smoothing, divergence factor, gradient accumulation, mixed precision.
        seed: seeds the data order (the same in every round).
        on_step: called after each iteration with (round index, step, iterations in the
            round's program times repeats), for progress bars.
        repeats: runs of each round, repeat r reading the data in the order of ``seed + r``
            from the same initial weights; the rounds read the mean curve (a hold where any
            repeat diverged counts as diverged), and ``suggested_lr_by_repeat`` gives each
            repeat's own suggestion, a measure of the answer's noise.
        engine: vectorized runs the repeats as one stacked model (``training.vectorized``);
            auto does so when the model, optimizer and data allow (plain SGD on tensors),
            else, with ``engine_reason`` saying why, runs them one after another (sequential).
    """
    started = time.perf_counter()
    settings = settings or RunnerSettings()
    rounds_settings = (
        rounds if isinstance(rounds, RoundsSettings) else RoundsSettings(rounds=rounds)
    )
    check.positive_int("rounds", rounds_settings.rounds)
    check.choice("curve", curve, CURVES)
    check.choice("suggestion", suggestion, tuple(SUGGESTIONS))
    check.positive_int("repeats", repeats)
    check.choice("engine", engine, ENGINES)
    check.positive_int("accumulation_steps", settings.accumulation_steps)
    device = _model_device(model)
    ddp = distributed.is_ddp(model)
    world = distributed.world_size() if ddp else 1
    module = distributed.unwrap(model)
    if settings.amp and device.type != "cuda":
        raise LrkitValueError(
            "mixed precision (amp) needs a CUDA device", cli_message="--amp needs --device cuda"
        )
    if isinstance(program, str):
        program = segments_program(parse_segments(program))
    program = program or default_program()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=program.lrs[0])
    make_batches = _batch_source(data, batch_size, device, world)
    evaluation = _as_tensor_data(eval_data, device) if eval_data is not None else None
    tensors = _as_tensor_data(data, device) if isinstance(data, (TensorData, tuple)) else None
    seeds = [seed + r for r in range(repeats)]

    saved = training_state.capture(model, optimizer)
    # A user's DataLoader is reseeded for every round; its own generator is put back after.
    loader_generator = data.generator if isinstance(data, DataLoader) else None
    loader_state = loader_generator.get_state() if loader_generator is not None else None
    sampler = data.sampler if isinstance(data, DataLoader) else None
    sampler_epoch = sampler.epoch if isinstance(sampler, DistributedSampler) else None
    results: list[RoundResult] = []
    try:
        check_model_fits(module, loss_fn, make_batches(seed))
        reason = None
        if engine != "sequential":
            example = tensors.x[:2] if tensors is not None else None
            reason = stacking_problem(model, optimizer, tensors, settings, example)
        stacked = engine != "sequential" and reason is None
        for index in range(rounds_settings.rounds):
            if stacked:
                assert tensors is not None
                callback = _bind_round(on_step, index, program.num_iterations, 0)
                records = run_stacked_round(
                    model,
                    optimizer,
                    loss_fn,
                    tensors,
                    batch_size,
                    seeds,
                    program,
                    settings,
                    evaluation,
                    callback,
                )
            else:
                records = []
                for r, repeat_seed in enumerate(seeds):
                    # Every round starts from the same weights, optimizer state and RNG states.
                    training_state.restore(saved, model, optimizer)
                    callback = _bind_round(on_step, index, program.num_iterations, r, repeats)
                    records.append(
                        run_round(
                            model,
                            optimizer,
                            loss_fn,
                            make_batches(repeat_seed),
                            program,
                            settings,
                            evaluation,
                            callback,
                        )
                    )
            results.append(_read_round(records, curve))
            turn = results[-1].turning_point
            if index + 1 == rounds_settings.rounds or turn is None:
                break
            at = _program_index(program, results[-1], turn.index)
            program = narrow(program, at, rounds_settings.points, rounds_settings.span)
    finally:
        training_state.restore(saved, model, optimizer)
        if loader_generator is not None and loader_state is not None:
            loader_generator.set_state(loader_state)
        if isinstance(sampler, DistributedSampler) and sampler_epoch is not None:
            sampler.set_epoch(sampler_epoch)

    suggestions = combine_rounds(results)
    by_repeat: tuple[float | None, ...] = ()
    if repeats > 1:
        by_repeat = tuple(
            combine_rounds([_read_round([r.records[i]], curve) for r in results])[suggestion]
            for i in range(repeats)
        )
    if isinstance(data, DataLoader):
        per_loader_batch = int(data.batch_size or 0)
        global_batch = per_loader_batch * world if _rank_local(data) else per_loader_batch
    else:
        global_batch = batch_size * world
    return RangeTestResult(
        model=model_name or type(module).__name__,
        data=data_name or type(data).__name__,
        batch_size=global_batch,
        device=str(device),
        rounds=tuple(results),
        suggestions=suggestions,
        method=suggestion,
        suggested_lr=suggestions[suggestion],
        seconds=time.perf_counter() - started,
        repeats=repeats,
        engine="vectorized" if stacked else "sequential",
        engine_reason=reason,
        suggested_lr_by_repeat=by_repeat,
        world_size=world,
    )


def combine_rounds(results: list[RoundResult]) -> dict[str, float | None]:
    """steepest, minimum and valley read the widest round; the turning point the finest round
    that found one (a narrow round can end with the loss still falling)."""
    suggestions = dict(results[0].suggestions)
    with_turn = [r for r in results if r.turning_point is not None]
    suggestions["turning_point"] = with_turn[-1].suggestions["turning_point"] if with_turn else None
    return suggestions


def check_model_fits(model: nn.Module, loss_fn: LossFn, batches: RunnerBatches) -> None:
    """One forward pass and loss in eval mode, no gradients: a clear error if the model's
    output does not fit the targets, before any training (``model`` unwrapped from DDP: its
    forward is then no collective)."""
    batch = next(batches)
    x, y = batch[0], batch[1]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                output = model(x)
            except Exception as exc:
                raise LrkitValueError(
                    f"the model fails on a batch of inputs of shape {tuple(x.shape)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            if isinstance(loss_fn, nn.CrossEntropyLoss) and y.dtype == torch.int64:
                classes = int(y.max()) + 1
                if output.ndim != 2 or output.shape[0] != y.shape[0] or output.shape[1] < classes:
                    raise LrkitValueError(
                        f"the model's output of shape {tuple(output.shape)} does not fit labels "
                        f"0..{classes - 1}: expected ({y.shape[0]}, >= {classes})"
                    )
            try:
                loss = loss_fn(output, y)
            except Exception as exc:
                raise LrkitValueError(
                    f"the loss fails on the model's output of shape {tuple(output.shape)} and "
                    f"targets of shape {tuple(y.shape)}: {type(exc).__name__}: {exc}"
                ) from None
            if loss.ndim != 0:
                raise LrkitValueError(
                    "the loss must be a scalar (mean over the batch), "
                    f"got shape {tuple(loss.shape)}"
                )
    finally:
        model.train(was_training)


def curve_of(record: RoundRecord, curve: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """The (kind, lrs, losses) the suggestions read. A hold cut short by divergence appears
    as a non-finite loss, so the rules see that the curve rose there."""
    holds = record.holds
    if curve == "auto":
        if any(h.eval_loss is not None for h in holds):
            curve = "eval"
        elif holds and max(h.iterations for h in holds) > 1:
            curve = "mean"
        else:
            curve = "smoothed"
    if curve == "smoothed":
        points = record.points
        lrs = tuple(p.lr for p in points)
        losses = tuple(p.smoothed_loss for p in points)
        if record.diverged_at is not None and points:
            losses = (*losses[:-1], math.inf)
        return curve, lrs, losses
    lrs = tuple(h.lr for h in holds)
    if curve == "eval":
        losses = tuple(
            h.eval_loss if h.complete and h.eval_loss is not None else math.inf for h in holds
        )
    else:
        losses = tuple(h.mean_loss if h.complete else math.inf for h in holds)
    return curve, lrs, losses


def _read_round(records: list[RoundRecord], curve: str) -> RoundResult:
    """The round's curve: the mean over repeats, hold by hold (or iteration by iteration);
    where any repeat diverged the curve is inf, so the rules see it rise there."""
    longest = max(records, key=lambda r: len(r.points))
    kind = curve_of(longest, curve)[0]
    curves = [curve_of(record, kind) for record in records]
    lrs = max((c[1] for c in curves), key=len)
    losses = tuple(
        math.fsum(values) / len(values) if all(math.isfinite(v) for v in values) else math.inf
        for values in (
            [c[2][i] if i < len(c[2]) else math.inf for c in curves] for i in range(len(lrs))
        )
    )
    return RoundResult(
        record=records[0],
        repeats=tuple(records[1:]),
        curve=kind,
        curve_lrs=lrs,
        curve_losses=losses,
        suggestions=suggest_all(lrs, losses),
        turning_point=find_turning_point(lrs, losses),
    )


def _program_index(program: LrProgram, round_result: RoundResult, curve_index: int) -> int:
    """The index in ``program.lrs`` of the curve's ``curve_index``-th point (the smoothed
    curve has a point per iteration, the others a point per hold)."""
    lr = round_result.curve_lrs[curve_index]
    return min(range(len(program.lrs)), key=lambda i: abs(program.lrs[i] - lr))


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


def _model_device(model: nn.Module) -> torch.device:
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    if first is None:
        raise LrkitValueError("the model has no parameters to train")
    return first.device


def _as_tensor_data(
    data: TensorData | tuple[torch.Tensor, torch.Tensor], device: torch.device
) -> TensorData:
    if isinstance(data, TensorData):
        return data.to(device)
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        return TensorData(data[0], data[1]).to(device)
    raise LrkitValueError(
        f"expected TensorData or an (inputs, targets) pair of tensors, got {type(data).__name__}"
    )


def _rank_local(loader: DataLoader) -> bool:  # type: ignore[type-arg]
    """True when the loader's batches are already this rank's (a ``DistributedSampler``)."""
    return isinstance(loader.sampler, DistributedSampler)


def _batch_source(
    data: DataLike, batch_size: int, device: torch.device, world: int = 1
) -> Callable[[int], RunnerBatches]:
    """A factory of batch iterators in the order seeded by its argument (one per round and
    repeat). With ``world`` > 1 (a DDP model) each yields this rank's shard of the global
    batches, which hold ``batch_size`` x ``world`` examples."""
    if isinstance(data, DataLoader):
        loader = data
        local = _rank_local(loader)

        def from_loader(seed: int) -> RunnerBatches:
            generator = getattr(loader, "generator", None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(seed)
            if isinstance(loader.sampler, DistributedSampler):
                loader.sampler.set_epoch(seed)  # its order: its seed + this "epoch"
            return _sharded(_to_device(_cycle(loader), device), world > 1 and not local)

        return from_loader
    if isinstance(data, Dataset) and not isinstance(data, TensorData):
        loader_generator = torch.Generator()
        loader = DataLoader(
            data, batch_size=batch_size * world, shuffle=True, generator=loader_generator
        )

        def from_dataset(seed: int) -> RunnerBatches:
            loader_generator.manual_seed(seed)
            return _sharded(_to_device(_cycle(loader), device), world > 1)

        return from_dataset
    tensors = _as_tensor_data(data, device)
    check.positive_int("batch_size", batch_size)

    def from_tensors(seed: int) -> RunnerBatches:
        return _sharded(iter(BatchStream(tensors, batch_size * world, seed)), world > 1)

    from_tensors(0)  # check the batch size against the data now
    return from_tensors


def _sharded(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], shard: bool) -> RunnerBatches:
    return distributed.shard_batches(batches) if shard else batches


def _cycle(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # type: ignore[type-arg]
    while True:
        empty = True
        for x, y in loader:
            empty = False
            yield x, y
        if empty:
            raise LrkitValueError("the DataLoader yields no batches")


def _to_device(
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for x, y in batches:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
