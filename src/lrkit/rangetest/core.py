"""The learning-rate range test as ask/tell: it hands out the next lr, the caller reports the
loss, and it decides when to stop (L. N. Smith, "Cyclical Learning Rates for Training Neural
Networks", 2017, section 3.3).

Any training step can drive it: the PyTorch runner (:mod:`lrkit.rangetest.rounds`) is one
caller; a JAX or numpy loop is another::

    test = RangeTest(exponential_range(1e-6, 1.0, 100))
    while (step := test.ask()) is not None:
        test.tell(train_one_batch(step.lr))
    record = test.record()

Smoothing is the bias-corrected exponential moving average of Adam (Kingma & Ba 2015):
avg_t = beta * avg_(t-1) + (1 - beta) * loss_t, smoothed_t = avg_t / (1 - beta ** (t + 1)).
The test stops when a loss is not finite or when the smoothed loss has risen too far above
its minimum m: smoothed_t > m + (diverge_factor - 1) * s, where s = m for a loss whose
minimum is positive (smoothed_t > diverge_factor * m, Smith's and fastai's rule), and, once the
minimum is zero or below (a negative log-likelihood without its constant, as PyTorch's
``PoissonNLLLoss`` or ``GaussianNLLLoss``, where "4x the minimum" would be below the minimum),
s = max(|m|, smoothed_0 - m): the larger of the minimum's size and how far the loss fell to it
from the first smoothed value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from lrkit import validation as check
from lrkit.errors import LrkitValueError
from lrkit.rangetest.programs import LrProgram


class Step(NamedTuple):
    """What the test asks for: train one iteration at ``lr``.

    Per-iteration records are named tuples: immutable like the frozen dataclasses of the
    results, and cheap enough to create that the test adds ~1% to a small network's step.
    """

    iteration: int
    lr: float
    hold_index: int
    ends_hold: bool
    """True on the last iteration at this lr: the caller may then report an eval loss."""


class Point(NamedTuple):
    """One iteration: its lr, the batch loss and the smoothed loss."""

    iteration: int
    lr: float
    loss: float
    smoothed_loss: float


@dataclass(frozen=True)
class Hold:
    """One held lr: the mean batch loss over the hold and, if measured, an eval loss at its end."""

    lr: float
    mean_loss: float
    eval_loss: float | None
    iterations: int
    complete: bool
    """False when the test stopped inside this hold."""


@dataclass(frozen=True)
class RoundRecord:
    """Everything one pass of the test measured."""

    program: str
    points: tuple[Point, ...]
    holds: tuple[Hold, ...]
    diverged_at: float | None
    """The lr at which the test stopped for divergence, or None if it ran to the end."""
    stop_reason: str
    focus: float | None = None
    """The program's focus: where a narrowed round's fine steps start."""


def check_stopping(smoothing: float, diverge_factor: float) -> tuple[float, float]:
    """The settings that decide when a test stops, as :class:`RangeTest` needs them:
    ``smoothing`` in [0, 1) and ``diverge_factor`` > 1 (with 1 or less the test would stop at
    the first loss that does not fall). One statement of the bounds, for callers that check
    before any work (the CLI) and for the test itself."""
    beta = check.float_in("smoothing", smoothing, 0.0, 1.0, low_open=False, high_open=True)
    return beta, check.greater_than("diverge_factor", diverge_factor, 1.0)


class RangeTest:
    """Ask/tell driver of one range-test pass over ``program``.

    Args:
        program: the learning rates and how long each is held.
        smoothing: beta of the bias-corrected moving average, in [0, 1).
        diverge_factor: stop when the smoothed loss exceeds this times its minimum (> 1; for
            a minimum of zero or below, ``divergence_threshold``).
    """

    def __init__(
        self, program: LrProgram, smoothing: float = 0.98, diverge_factor: float = 4.0
    ) -> None:
        self.program = program
        self.beta, self.diverge_factor = check_stopping(smoothing, diverge_factor)
        self._steps = [Step._make(step) for step in program.iterations()]
        self._next = 0
        self._pending: Step | None = None
        self._points: list[Point] = []
        self._holds: list[Hold] = []
        self._hold_sum = 0.0
        self._hold_count = 0
        self._average = 0.0
        self._beta_power = 1.0  # beta ** (number of finite losses told)
        self._best = math.inf
        self._first = math.nan  # the first smoothed loss
        self._stop: str | None = None
        self._diverged_at: float | None = None
        self._awaiting_eval = False

    @property
    def finished(self) -> bool:
        return self._stop is not None

    def ask(self) -> Step | None:
        """The next iteration to run, or None when the test is over."""
        if self._pending is not None:
            raise LrkitValueError("tell() the loss of the last step before asking for the next")
        self._awaiting_eval = False
        if self._stop is not None:
            return None
        if self._next == len(self._steps):
            self._stop = "completed the program"
            return None
        self._pending = step = self._steps[self._next]
        self._next += 1
        return step

    def tell(self, loss: float) -> None:
        """Report the training loss of the step just asked for."""
        step = self._pending
        if step is None:
            raise LrkitValueError("ask() for a step before telling its loss")
        self._pending = None
        loss = float(loss)
        self._hold_sum += loss
        self._hold_count += 1
        if not math.isfinite(loss):
            self._points.append(Point(step.iteration, step.lr, loss, math.nan))
            self._diverge(step, "the loss is not finite")
            return
        beta = self.beta
        self._average = beta * self._average + (1.0 - beta) * loss
        self._beta_power *= beta
        smoothed = self._average / (1.0 - self._beta_power)
        self._points.append(Point(step.iteration, step.lr, loss, smoothed))
        if math.isnan(self._first):
            self._first = smoothed
        if smoothed > divergence_threshold(self._best, self._first, self.diverge_factor):
            self._diverge(step, self._diverged_because())
            return
        if smoothed < self._best:
            self._best = smoothed
        if step.ends_hold:
            self._close_hold(step.lr, complete=True)
            self._awaiting_eval = True

    def tell_eval(self, loss: float) -> None:
        """Report the eval loss measured at the end of the hold that just ended."""
        if not self._awaiting_eval or not self._holds:
            raise LrkitValueError("tell_eval() belongs right after the last step of a hold")
        self._awaiting_eval = False
        last = self._holds[-1]
        self._holds[-1] = Hold(last.lr, last.mean_loss, float(loss), last.iterations, last.complete)

    def record(self) -> RoundRecord:
        """What the test measured so far (the whole pass once ``finished``)."""
        return RoundRecord(
            program=self.program.description,
            points=tuple(self._points),
            holds=tuple(self._holds),
            diverged_at=self._diverged_at,
            stop_reason=self._stop or "running",
            focus=self.program.focus,
        )

    def _close_hold(self, lr: float, *, complete: bool) -> None:
        count = self._hold_count
        mean = self._hold_sum / count if count else math.nan
        self._holds.append(Hold(lr, mean, None, count, complete))
        self._hold_sum, self._hold_count = 0.0, 0

    def _diverged_because(self) -> str:
        factor = f"{self.diverge_factor:g}"
        if self._best > 0:
            return f"the smoothed loss exceeded {factor}x its minimum"
        return (
            f"the smoothed loss rose above its minimum ({self._best:.4g}, not above zero) by "
            f"more than {self.diverge_factor - 1:g}x the larger of its size and its fall"
        )

    def _diverge(self, step: Step, why: str) -> None:
        self._diverged_at = step.lr
        self._stop = f"diverged at lr {step.lr:g}: {why}"
        self._close_hold(step.lr, complete=False)


def divergence_threshold(minimum: float, first: float, factor: float) -> float:
    """The smoothed loss above which the test stops (the module's docstring): ``factor``
    times a positive ``minimum``; for a minimum of zero or below, the minimum plus
    ``factor - 1`` times the larger of its size and its fall from the ``first`` smoothed
    loss. Infinite before any loss."""
    if not math.isfinite(minimum):
        return math.inf
    if minimum > 0:
        return factor * minimum
    return minimum + (factor - 1) * max(-minimum, first - minimum)
