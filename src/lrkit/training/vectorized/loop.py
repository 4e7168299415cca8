"""The vectorized training loop: K trials that share a batch size, in lockstep, as one
stacked network.

Its steps and checks come from ``training.clock``, as the plain loop's do (the same seeded
data orders, the same checks, the same divergence rule), so each trial's curve is the one
``training.loop.train_trial`` would draw, and a stack can start from its trials' checkpoints
and hand them back, in PyTorch's formats (any engine can go on from them). Trials with the
same seed see the same batches, and the first layer then multiplies one shared batch by all
K weight matrices at once. A trial whose loss stops being finite is reported at the next
check, as diverged at its first bad iteration, and dropped from the stack; the others go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.training.checkpoint import on_cpu
from lrkit.training.clock import Position
from lrkit.training.evaluate import LossFn
from lrkit.training.records import Checkpoint, CurvePoint, TrialOutcome, TrialPlan
from lrkit.training.running_loss import RunningLoss
from lrkit.training.vectorized.loss import StackedLoss
from lrkit.training.vectorized.network import StackedNetwork, stack_models
from lrkit.training.vectorized.sgd import StackedSGD

OnTrialCheck = Callable[[int, CurvePoint, float], None]
"""(trial index in the stack, the point, training progress in epochs)."""
OnTrialEnd = Callable[[int, TrialOutcome], None]
OnDiverged = Callable[[int, str, int | None, float | None], None]
"""How a run ends a trial: (index in ``trials``, status, diverged at, test accuracy)."""
T = TypeVar("T")


@dataclass(frozen=True)
class StackedTrial:
    """One trial of a stack: its plan and its SGD settings."""

    plan: TrialPlan
    momentum: float = 0.0
    weight_decay: float = 0.0


def check_stack(trials: Sequence[StackedTrial]) -> None:
    """Trials of one stack must share batch size, length, checks, batch-size schedule and
    where they start."""

    def shape(p: TrialPlan) -> tuple[object, ...]:
        start = p.start.position if p.start is not None else None
        return (p.batch_size, p.epochs, p.eval_every, p.batch_size_schedule, start)

    first = shape(trials[0].plan)
    if any(shape(t.plan) != first for t in trials[1:]):
        raise ValueError(
            "trials of one stack must share batch size, epochs, eval_every, batch-size "
            "schedule and starting position"
        )


class StackedRun:
    """Train ``models[k]`` as ``trials[k]`` says, all at once (``run``); ``network`` holds
    the trained weights afterwards (``network.trial_state_dict(k)``), the models themselves
    are not changed (a trial that starts from a checkpoint takes its weights from there).
    Raises ``NotStackableError`` before any training when the models cannot be stacked.
    Each outcome's ``seconds`` is the trial's share of the stack's wall time (the time so
    far over the number of trials)."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        trials: Sequence[StackedTrial],
        loss_fn: LossFn,
        train: TensorData,
        val: TensorData,
        test: TensorData | None,
        eval_chunk: int = 4096,
    ):
        check_stack(trials)
        self.models, self.trials = list(models), list(trials)
        self.train, self.val, self.test = train, val, test
        seeds = [t.plan.seed for t in trials]
        self.seeds = list(dict.fromkeys(seeds))
        self.shared_batches = len(self.seeds) == 1
        self.network: StackedNetwork = stack_models(models, train.x[:2], not self.shared_batches)
        self.order_of_trial = torch.tensor(
            [self.seeds.index(s) for s in seeds], device=train.x.device
        )
        self.loss = StackedLoss(loss_fn)
        self.sgd = StackedSGD(
            self.network.params,
            [t.plan.lr for t in trials],
            [t.momentum for t in trials],
            [t.weight_decay for t in trials],
        )
        self.eval_chunk = eval_chunk
        self.alive = list(range(len(trials)))
        """Stack position -> index in ``trials`` of the trials still training."""
        for k, trial in enumerate(self.trials):
            if trial.plan.start is not None:
                self._resume(k, trial.plan.start)

    def run(
        self, on_check: OnTrialCheck | None = None, on_end: OnTrialEnd | None = None
    ) -> list[TrialOutcome]:
        started = time.perf_counter()
        plan = self.trials[0].plan
        train = self.train
        k_all = len(self.trials)
        clock = plan.clock(len(train), self.seeds, train.x.device)
        schedules = [t.plan.schedule for t in self.trials]
        scheduled = any(s is not None for s in schedules)
        outcomes: list[TrialOutcome | None] = [None] * k_all
        starts = [t.plan.start for t in self.trials]
        points = [list(s.points) if s is not None else [] for s in starts]

        def finish(index: int, status: str, at: int | None, test_accuracy: float | None) -> None:
            start = starts[index]
            seconds = (time.perf_counter() - started) / k_all + (start.seconds if start else 0.0)
            checkpoint = None
            if status == "done" and self.trials[index].plan.keep_checkpoint:
                checkpoint = self._checkpoint(index, clock.position, points[index], seconds)
            outcome = TrialOutcome(
                status, at, tuple(points[index]), test_accuracy, seconds, checkpoint=checkpoint
            )
            outcomes[index] = outcome
            if on_end is not None:
                on_end(index, outcome)

        def record(
            progress: float,
            iteration: int,
            train_losses: list[float],
            evaluated: list[tuple[float, float]],
        ) -> None:
            for position, index in enumerate(self.alive):
                point = CurvePoint(
                    iteration, progress, train_losses[position], *evaluated[position]
                )
                points[index].append(point)
                if on_check is not None:
                    on_check(index, point, progress)

        if plan.start is None:
            record(0.0, 0, [math.nan] * k_all, self.evaluate(self.val))
        losses = RunningLoss(len(self.alive), train.x.device)
        for step in clock:
            if self.shared_batches:
                x, y = train.x[step.examples[0]], train.y[step.examples[0]]
                y = y.expand(len(self.alive), *y.shape)
            else:
                index = step.examples[self.order_of_trial]
                x, y = train.x[index], train.y[index]
            if scheduled:
                self.sgd.set_lrs(
                    [
                        s(step.iteration - 1)
                        if (s := schedules[i]) is not None
                        else self.trials[i].plan.lr
                        for i in self.alive
                    ]
                )
            output = self.network.forward(x, True)
            step_losses, grad = self.loss.value_and_grad(output, y)
            self.network.backward(grad)
            self.sgd.step()
            losses.add(step_losses)
            if not step.check:
                continue
            interval = losses.read(step.iteration)
            at = {p: i for p, i in enumerate(interval.diverged_at) if i is not None}
            means = without(list(interval.mean), self._end_diverged(at, finish))
            if not self.alive:
                break
            evaluated = self.evaluate(self.val)
            # A finite training loss but a validation loss that is not: diverged at the check,
            # as in ``training.loop``.
            at = {
                p: step.iteration
                for p, (loss, _) in enumerate(evaluated)
                if not math.isfinite(loss)
            }
            gone = self._end_diverged(at, finish)
            means, evaluated = without(means, gone), without(evaluated, gone)
            if not self.alive:
                break
            losses.restart(len(self.alive))
            record(step.progress, step.iteration, means, evaluated)
        test_results = self.evaluate(self.test) if self.test is not None and self.alive else None
        for position, index_ in enumerate(self.alive):
            finish(index_, "done", None, test_results[position][1] if test_results else None)
        return [o for o in outcomes if o is not None]

    def _resume(self, k: int, start: Checkpoint) -> None:
        """Trial ``k`` goes on from ``start``: its weights and momentum buffers."""
        self.network.load_trial_state_dict(k, start.model)
        index_of = {name: i for i, (name, _) in enumerate(self.models[k].named_parameters())}
        state = start.optimizer.get("state", {})
        buffers = []
        for name, p in self.network.named_params():
            saved = state.get(index_of[name], {}).get("momentum_buffer")
            like = p.tensor.select(p.trial_axis, k)
            buffers.append(torch.zeros_like(like) if saved is None else saved)
        self.sgd.load_momentum(k, buffers)

    def _checkpoint(
        self, index: int, position: Position, points: list[CurvePoint], seconds: float
    ) -> Checkpoint:
        """Trial ``index`` as a checkpoint in the formats of its model and of
        ``torch.optim.SGD`` (so the plain loop can go on from it too)."""
        at = self.alive.index(index)
        trial, model = self.trials[index], self.models[index]
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=trial.plan.lr,
            momentum=trial.momentum,
            weight_decay=trial.weight_decay,
        ).state_dict()
        buffers = self.sgd.trial_momentum(at)
        if buffers is not None:
            by_name = dict(zip([n for n, _ in self.network.named_params()], buffers, strict=True))
            names = [name for name, _ in model.named_parameters()]
            optimizer["state"] = {i: {"momentum_buffer": by_name[n]} for i, n in enumerate(names)}
        return Checkpoint(
            on_cpu(self.network.trial_state_dict(at)),
            on_cpu(optimizer),
            position,
            tuple(points),
            seconds,
        )

    def _end_diverged(self, at: dict[int, int], finish: OnDiverged) -> set[int]:
        """End the trials at the stack positions ``at`` as diverged (each at its iteration)
        and take them out of the stack; the positions they held."""
        for position, iteration in at.items():
            finish(self.alive[position], "diverged", iteration, None)
        if at:
            self._drop(list(at))
        return set(at)

    def _drop(self, positions: list[int]) -> None:
        """Take the trials at stack ``positions`` out of the stack."""
        keep = [p for p in range(len(self.alive)) if p not in positions]
        kept = torch.tensor(keep, dtype=torch.long, device=self.train.x.device)
        self.network.keep(kept)
        self.sgd.keep(kept)
        self.order_of_trial = self.order_of_trial.index_select(0, kept)
        self.alive = [self.alive[p] for p in keep]

    def evaluate(self, data: TensorData) -> list[tuple[float, float]]:
        """(mean loss, accuracy) of each live trial on ``data``."""
        return evaluate_stack(
            self.network, self.loss, data, not self.shared_batches, self.eval_chunk
        )


def without(values: list[T], positions: set[int]) -> list[T]:
    """``values`` (one per stack position) less those at ``positions``."""
    return [v for p, v in enumerate(values) if p not in positions]


def evaluate_stack(
    network: StackedNetwork,
    loss: StackedLoss,
    data: TensorData,
    per_trial_input: bool,
    chunk: int = 4096,
) -> list[tuple[float, float]]:
    """(mean loss, accuracy) of each trial of ``network`` on ``data``, as
    ``training.evaluate`` computes them (accuracy nan unless the output is (B, classes) with
    integer targets)."""
    k = network.trials
    device = data.x.device
    loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
    correct = torch.zeros(k, dtype=torch.int64, device=device)
    classifies = not data.y.is_floating_point()
    # Per-trial inputs repeat the chunk K times; keep that copy about as big as one chunk.
    size = max(1, chunk // k) if per_trial_input else chunk
    with torch.no_grad():
        for start in range(0, len(data), size):
            x, y = data.x[start : start + size], data.y[start : start + size]
            if per_trial_input:
                x = x.expand(k, *x.shape)
            output = network.forward(x, False)
            targets = y.expand(k, *y.shape)
            loss_sum += loss.value(output, targets).double() * y.shape[0]
            classifies = classifies and output.dim() == 3
            if classifies:
                correct += (output.argmax(dim=2) == targets).sum(1)
    accuracy = (correct.double() / len(data)).tolist() if classifies else [math.nan] * k
    return list(zip((loss_sum / len(data)).tolist(), accuracy, strict=True))
