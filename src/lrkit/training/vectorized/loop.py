"""The vectorized training loop: K trials that share a batch size, in lockstep, as one
stacked network.

It follows ``training.loop.train_trial`` step for step (the same seeded data orders, the same
checks, the same divergence rule), so each trial's curve is the one the plain loop would
draw. Trials with the same seed see the same batches, and the first layer then multiplies
one shared batch by all K weight matrices at once. A trial whose loss stops being finite is
reported at the next check, as diverged at its first bad iteration, and dropped from the
stack; the others go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.training.evaluate import LossFn
from lrkit.training.loop import CurvePoint, TrialOutcome, TrialPlan
from lrkit.training.vectorized.loss import StackedLoss
from lrkit.training.vectorized.network import StackedNetwork, stack_models
from lrkit.training.vectorized.sgd import StackedSGD

OnTrialCheck = Callable[[int, CurvePoint, float], None]
"""(trial index in the stack, the point, training progress in epochs)."""
OnTrialEnd = Callable[[int, TrialOutcome], None]


@dataclass(frozen=True)
class StackedTrial:
    """One trial of a stack: its plan and its SGD settings."""

    plan: TrialPlan
    momentum: float = 0.0
    weight_decay: float = 0.0


def check_stack(trials: Sequence[StackedTrial]) -> None:
    """Trials of one stack must share batch size, length, checks and batch-size schedule."""
    first = trials[0].plan
    for trial in trials[1:]:
        p = trial.plan
        if (p.batch_size, p.epochs, p.eval_every, p.batch_size_schedule) != (
            first.batch_size,
            first.epochs,
            first.eval_every,
            first.batch_size_schedule,
        ):
            raise ValueError(
                "trials of one stack must share batch size, epochs, eval_every and "
                "batch-size schedule"
            )


class StackedRun:
    """Train ``models[k]`` as ``trials[k]`` says, all at once (``run``); ``network`` holds
    the trained weights afterwards (``network.trial_state_dict(k)``), the models themselves
    are not changed. Raises ``NotStackableError`` before any training when the models
    cannot be stacked. Each outcome's ``seconds`` is the trial's share of the stack's wall
    time (the time so far over the number of trials)."""

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
        self.trials = list(trials)
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

    def run(
        self, on_check: OnTrialCheck | None = None, on_end: OnTrialEnd | None = None
    ) -> list[TrialOutcome]:
        started = time.perf_counter()
        plan = self.trials[0].plan
        train = self.train
        n, device, k_all = len(train), train.x.device, len(self.trials)
        generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        schedules = [t.plan.schedule for t in self.trials]
        scheduled = any(s is not None for s in schedules)
        outcomes: list[TrialOutcome | None] = [None] * k_all
        points: list[list[CurvePoint]] = [[] for _ in range(k_all)]

        def finish(index: int, status: str, at: int | None, test_accuracy: float | None) -> None:
            outcome = TrialOutcome(
                status,
                at,
                tuple(points[index]),
                test_accuracy,
                (time.perf_counter() - started) / k_all,
            )
            outcomes[index] = outcome
            if on_end is not None:
                on_end(index, outcome)

        def record(progress: float, iteration: int, train_losses: list[float]) -> None:
            evaluated = self.evaluate(self.val)
            for position, index in enumerate(self.alive):
                point = CurvePoint(
                    iteration, progress, train_losses[position], *evaluated[position]
                )
                points[index].append(point)
                if on_check is not None:
                    on_check(index, point, progress)

        record(0.0, 0, [math.nan] * k_all)
        losses: list[torch.Tensor] = []
        iteration, next_check, epoch = 0, plan.eval_every, 0
        while epoch < plan.epochs and self.alive:
            batch_size = (
                plan.batch_size_schedule(epoch) if plan.batch_size_schedule else plan.batch_size
            )
            orders = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
            batches = range(0, n, batch_size)
            ended = False
            for b, start in enumerate(batches):
                index = orders[:, start : start + batch_size]
                if self.shared_batches:
                    x, y = train.x[index[0]], train.y[index[0]]
                    y = y.expand(len(self.alive), *y.shape)
                else:
                    index = index[self.order_of_trial]
                    x, y = train.x[index], train.y[index]
                if scheduled:
                    self.sgd.set_lrs(
                        [
                            s(iteration)
                            if (s := schedules[i]) is not None
                            else self.trials[i].plan.lr
                            for i in self.alive
                        ]
                    )
                output = self.network.forward(x, True)
                step_losses, grad = self.loss.value_and_grad(output, y)
                self.network.backward(grad)
                self.sgd.step()
                losses.append(step_losses)
                iteration += 1
                progress = epoch + (b + 1) / len(batches)
                last = progress >= plan.epochs - 1e-9
                if progress >= next_check - 1e-9 or last:
                    recent = torch.stack(losses).float()
                    finite = torch.isfinite(recent)
                    bad = (~finite.all(0)).tolist()
                    if any(bad):
                        first_bad = (~finite).int().argmax(0).tolist()
                        for position, index_ in enumerate(self.alive):
                            if bad[position]:
                                at = iteration - len(losses) + first_bad[position] + 1
                                finish(index_, "diverged", at, None)
                        self._drop([p for p, is_bad in enumerate(bad) if is_bad])
                        if not self.alive:
                            ended = True
                            break
                        recent = recent[:, [p for p, is_bad in enumerate(bad) if not is_bad]]
                    record(progress, iteration, recent.mean(0).tolist())
                    losses = []
                    while next_check <= progress + 1e-9:
                        next_check += plan.eval_every
                if last:
                    ended = True
                    break
            epoch += 1
            if ended:
                break
        test_results = self.evaluate(self.test) if self.test is not None and self.alive else None
        for position, index_ in enumerate(self.alive):
            finish(index_, "done", None, test_results[position][1] if test_results else None)
        return [o for o in outcomes if o is not None]

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
