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
from functools import partial
from typing import TypeVar

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.training.checkpoint import on_cpu
from lrkit.training.clock import Clock, Position
from lrkit.training.evaluate import LossFn
from lrkit.training.records import Checkpoint, CurvePoint, TrialOutcome, TrialPlan
from lrkit.training.running_loss import IntervalLoss, RunningLoss
from lrkit.training.vectorized.loss import StackedLoss
from lrkit.training.vectorized.network import StackedNetwork, stack_models, tensor_inputs
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
    where they start, and train each batch whole (gradient accumulation runs on the plain
    loop)."""
    if any(t.plan.accumulation_steps != 1 for t in trials):
        raise ValueError("gradient accumulation runs on the plain loop, not stacked")

    def shape(p: TrialPlan) -> tuple[object, ...]:
        start = p.start.position if p.start is not None else None
        return (p.batch_size, p.epochs, p.eval_every, p.batch_size_schedule, start)

    first = shape(trials[0].plan)
    if any(shape(t.plan) != first for t in trials[1:]):
        raise ValueError(
            "trials of one stack must share batch size, epochs, eval_every, batch-size "
            "schedule and starting position"
        )


class StackCurves:
    """What a stacked run has recorded: each trial's points (from its checkpoint's, where it
    started from one) and, once it ends, its outcome; ``on_check`` and ``on_end`` hear of
    each as it comes. A trial's seconds are its share of the stack's wall time since the
    run began (the time so far over the number of trials), on top of its checkpoint's."""

    def __init__(
        self,
        trials: Sequence[StackedTrial],
        on_check: OnTrialCheck | None,
        on_end: OnTrialEnd | None,
    ) -> None:
        self.started = time.perf_counter()
        self.starts = [t.plan.start for t in trials]
        self.points = [list(s.points) if s is not None else [] for s in self.starts]
        self.ended: list[TrialOutcome | None] = [None] * len(trials)
        self.on_check, self.on_end = on_check, on_end

    def record(
        self,
        alive: list[int],
        progress: float,
        iteration: int,
        train_losses: list[float],
        evaluated: list[tuple[float, float]],
    ) -> None:
        """A check's point for each trial in ``alive`` (by stack position)."""
        for position, index in enumerate(alive):
            point = CurvePoint(iteration, progress, train_losses[position], *evaluated[position])
            self.points[index].append(point)
            if self.on_check is not None:
                self.on_check(index, point, progress)

    def seconds(self, index: int) -> float:
        """Trial ``index``'s seconds so far."""
        start = self.starts[index]
        share = (time.perf_counter() - self.started) / len(self.starts)
        return share + (start.seconds if start else 0.0)

    def end(self, index: int, outcome: TrialOutcome) -> None:
        self.ended[index] = outcome
        if self.on_end is not None:
            self.on_end(index, outcome)

    def outcomes(self) -> list[TrialOutcome]:
        """The outcomes of the trials that ended, in the trials' order."""
        return [o for o in self.ended if o is not None]


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
        """Train every trial to its end: done, or diverged and dropped from the stack. Each
        check's points go to ``on_check`` and each outcome to ``on_end`` as it comes; the
        outcomes, in the trials' order."""
        plan = self.trials[0].plan
        clock = plan.clock(len(self.train), self.seeds, self.train.x.device)
        curves = StackCurves(self.trials, on_check, on_end)
        finish = partial(self._finish, curves, clock)
        scheduled = any(t.plan.schedule is not None for t in self.trials)
        if plan.start is None:
            no_loss = [math.nan] * len(self.trials)
            curves.record(self.alive, 0.0, 0, no_loss, self.evaluate(self.val))
        losses = RunningLoss(len(self.alive), self.train.x.device)
        for step in clock:
            x, y = self._batch(step.examples)
            if scheduled:
                self.sgd.set_lrs(self._scheduled_lrs(step.iteration - 1))
            output = self.network.forward(x, True)
            step_losses, grad = self.loss.value_and_grad(output, y)
            self.network.backward(grad)
            self.sgd.step()
            losses.add(step_losses)
            if not step.check:
                continue
            means, evaluated = self._check(step.iteration, losses.read(step.iteration), finish)
            if not self.alive:
                break
            losses.restart(len(self.alive))
            curves.record(self.alive, step.progress, step.iteration, means, evaluated)
        self._finish_alive(finish)
        return curves.outcomes()

    def _batch(self, examples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A step's inputs and targets from its ``examples`` (a row per seed): one batch that
        every live trial shares (its targets repeated for each), or each trial's own."""
        train = self.train
        inputs = tensor_inputs(train.x)
        if self.shared_batches:
            x, y = inputs[examples[0]], train.y[examples[0]]
            return x, y.expand(len(self.alive), *y.shape)
        index = examples[self.order_of_trial]
        return inputs[index], train.y[index]

    def _scheduled_lrs(self, t: int) -> list[float]:
        """Each live trial's lr at step ``t`` of its schedule (a trial without one keeps its
        lr)."""
        plans = [self.trials[i].plan for i in self.alive]
        return [p.schedule(t) if p.schedule is not None else p.lr for p in plans]

    def _check(
        self, iteration: int, interval: IntervalLoss, finish: OnDiverged
    ) -> tuple[list[float], list[tuple[float, float]]]:
        """A check after ``iteration``: the trials whose training loss stopped being finite
        in the ``interval`` end as diverged there; the others are evaluated, and those whose
        validation loss is not finite end as diverged at the check, as in ``training.loop``.
        The mean training loss and (validation loss, accuracy) of the trials left."""
        at = {p: i for p, i in enumerate(interval.diverged_at) if i is not None}
        means = without(list(interval.mean), self._end_diverged(at, finish))
        if not self.alive:
            return [], []
        evaluated = self.evaluate(self.val)
        at = {p: iteration for p, (loss, _) in enumerate(evaluated) if not math.isfinite(loss)}
        gone = self._end_diverged(at, finish)
        return without(means, gone), without(evaluated, gone)

    def _finish(
        self,
        curves: StackCurves,
        clock: Clock,
        index: int,
        status: str,
        at: int | None,
        test_accuracy: float | None,
    ) -> None:
        """End trial ``index`` with ``status`` (diverged ``at`` an iteration, or done with its
        ``test_accuracy``); a done trial that keeps its checkpoint hands one back."""
        seconds = curves.seconds(index)
        points = curves.points[index]
        checkpoint = None
        if status == "done" and self.trials[index].plan.keep_checkpoint:
            checkpoint = self._checkpoint(index, clock.position, points, seconds)
        outcome = TrialOutcome(
            status, at, tuple(points), test_accuracy, seconds, checkpoint=checkpoint
        )
        curves.end(index, outcome)

    def _finish_alive(self, finish: OnDiverged) -> None:
        """The trials still in the stack end done, with their test accuracy where there is a
        test set."""
        test_results = self.evaluate(self.test) if self.test is not None and self.alive else None
        for position, index in enumerate(self.alive):
            finish(index, "done", None, test_results[position][1] if test_results else None)

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
            x, y = tensor_inputs(data.x[start : start + size]), data.y[start : start + size]
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
