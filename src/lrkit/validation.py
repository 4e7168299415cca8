"""Argument checks used at lrkit's boundaries (library factories and the CLI).

Each check returns the value converted to its canonical type or raises
:class:`~lrkit.errors.InvalidParameterError` naming the parameter and what is allowed.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Iterable

from lrkit.errors import InvalidParameterError, LrkitValueError, option_name


def _real(
    name: str, value: object, requirement: str, holds: Callable[[float], bool] | None = None
) -> float:
    """``value`` as a finite float for which ``holds`` is true (when given); else the error
    that names ``requirement``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(name, requirement, value)
    result = float(value)
    if not math.isfinite(result) or (holds is not None and not holds(result)):
        raise InvalidParameterError(name, requirement, value)
    return result


def positive_float(name: str, value: object) -> float:
    """A finite number > 0."""
    return _real(name, value, "a finite number > 0", lambda r: r > 0)


def nonnegative_float(name: str, value: object) -> float:
    """A finite number >= 0."""
    return _real(name, value, "a finite number >= 0", lambda r: r >= 0)


def nonzero_float(name: str, value: object) -> float:
    """A finite number other than 0."""
    return _real(name, value, "a finite number other than 0", lambda r: r != 0)


def float_in(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_open: bool,
    high_open: bool,
    why: str = "",
) -> float:
    """A finite number in an interval; open or closed at each end; ``why`` says where a bound
    comes from, in the message."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    requirement = f"a number in {left}{low:g}, {high:g}{right}" + (f" ({why})" if why else "")

    def inside(result: float) -> bool:
        above = result > low if low_open else result >= low
        below = result < high if high_open else result <= high
        return above and below

    return _real(name, value, requirement, inside)


def _integer(
    name: str, value: object, requirement: str, holds: Callable[[int], bool] | None = None
) -> int:
    """``value`` as an int (a float with an integral value is accepted) for which ``holds``
    is true (when given); else the error that names ``requirement``."""
    if isinstance(value, bool):
        raise InvalidParameterError(name, requirement, value)
    if isinstance(value, numbers.Integral):
        result = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        result = int(float(value))
    else:
        raise InvalidParameterError(name, requirement, value)
    if holds is not None and not holds(result):
        raise InvalidParameterError(name, requirement, value)
    return result


def positive_int(name: str, value: object) -> int:
    """An integer > 0 (a float with an integral value is accepted)."""
    return _integer(name, value, "an integer > 0", lambda r: r > 0)


def nonnegative_int(name: str, value: object) -> int:
    """An integer >= 0 (a float with an integral value is accepted)."""
    return _integer(name, value, "an integer >= 0", lambda r: r >= 0)


def int_at_least(name: str, value: object, low: int, why: str = "") -> int:
    """An integer >= ``low``; ``why`` says where the bound comes from, in the message."""
    requirement = f"an integer >= {low}" + (f" ({why})" if why else "")
    return _integer(name, value, requirement, lambda r: r >= low)


def int_in(name: str, value: object, low: int, high: int, why: str = "") -> int:
    """An integer in ``[low, high]`` (a float with an integral value is accepted); ``why``
    says where a bound comes from, in the message."""
    requirement = f"an integer in [{low}, {high}]" + (f" ({why})" if why else "")
    return _integer(name, value, requirement, lambda r: low <= r <= high)


SEED_MAX = 2**32 - 1
"""The largest seed: seeds are 32-bit unsigned integers, as numpy's and most RNGs' are, so a
seed given to lrkit means the same thing to every generator it may reach."""


def seed(name: str, value: object) -> int:
    """A seed: an integer in ``[0, SEED_MAX]``."""
    return int_in(name, value, 0, SEED_MAX)


def greater_than(name: str, value: object, bound: float) -> float:
    """A finite number > ``bound``."""
    return _real(name, value, f"a finite number > {bound:g}", lambda r: r > bound)


MAX_CHECKS = 100_000
"""Checks (evaluations) a training run makes at most: each keeps a point in memory and in the
results, so their number is bounded before a run starts."""


def epochs_between_checks(name: str, value: object, epochs: float) -> float:
    """Epochs between the checks of a run of ``epochs`` epochs: at most ``epochs`` (a run
    checks at its end anyway) and at least ``epochs / MAX_CHECKS``."""
    return float_in(
        name,
        value,
        epochs / MAX_CHECKS,
        epochs,
        low_open=False,
        high_open=False,
        why=f"at most the epochs, and at most {MAX_CHECKS} checks a run",
    )


MAX_STEPS = 1_000_000_000
"""Optimizer steps a run takes at most. Every budget in epochs (advise, sweep, noise, laws) is
bounded by it, first by itself (an epoch is at least one step) and then against the data,
before anything trains: a budget of 1e300 epochs is refused, not run for ever."""


def budget_epochs(name: str, value: object) -> float:
    """A budget in epochs: > 0, and at most ``MAX_STEPS`` (an epoch is at least one step);
    :func:`budget_steps` checks it against the data once they are known."""
    return float_in(
        name,
        value,
        0.0,
        MAX_STEPS,
        low_open=True,
        high_open=False,
        why=f"a run takes at most {MAX_STEPS:.0e} optimizer steps, and an epoch at least one",
    )


def budget_steps(
    name: str,
    epochs: float,
    examples: int,
    batch_size: int,
    *,
    share: float = 1.0,
    part: str = "",
) -> float:
    """``epochs`` over ``examples`` in batches of ``batch_size``: its shortest part (a
    ``share`` of it, named ``part``, e.g. a race's first rung) trains at least one optimizer
    step, and the whole at most ``MAX_STEPS``. Below one step a run cannot end where it was
    asked to (it takes its one step anyway, past the point); the message gives the least
    budget that holds, rounded up, or the most, rounded down."""
    per_epoch = math.ceil(examples / batch_size)
    epoch = (
        f"an epoch is {per_epoch} step{'s' if per_epoch != 1 else ''} of batch {batch_size} "
        f"over {examples} examples"
    )
    shown = f"{name} {epochs:g}"
    if epochs * share * per_epoch < 1 - 1e-9:
        least = round_up(1 / (share * per_epoch))
        under = (
            f"gives {part} less than one optimizer step"
            if part
            else "is less than one optimizer step"
        )
        raise _budget_error(name, f"{shown} {under} ({epoch}); give at least {least:g}")
    if epochs * per_epoch > MAX_STEPS:
        most = round_down(MAX_STEPS / per_epoch)
        raise _budget_error(
            name,
            f"{shown} is more than {MAX_STEPS:.0e} optimizer steps ({epoch}); "
            f"give at most {most:g}",
        )
    return epochs


def _budget_error(name: str, message: str) -> LrkitValueError:
    """``message`` (which starts with ``name``) with the name spelled as an option for the CLI."""
    return LrkitValueError(message, cli_message=option_name(name) + message[len(name) :])


def round_up(value: float, digits: int = 3) -> float:
    """``value`` rounded up to ``digits`` significant digits (a least bound that holds)."""
    unit = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return float(f"{math.ceil(value / unit - 1e-9) * unit:.{digits}g}")


def round_down(value: float, digits: int = 3) -> float:
    """``value`` rounded down to ``digits`` significant digits (a most bound that holds)."""
    unit = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return float(f"{math.floor(value / unit + 1e-9) * unit:.{digits}g}")


def default_between_checks(default: float, epochs: float) -> float:
    """Epochs between the checks of a run of ``epochs`` when none were asked for: the
    ``default``, fitted to the run (at most its epochs: a shorter run checks at its end; at
    least ``epochs / MAX_CHECKS``), so that a default the user did not give is never the
    option refused."""
    return min(max(default, epochs / MAX_CHECKS), epochs)


def increasing_positive_ints(name: str, values: Iterable[object]) -> tuple[int, ...]:
    """A non-empty, strictly increasing sequence of integers > 0."""
    requirement = "a non-empty, strictly increasing list of integers > 0"
    items = list(values)
    if not items:
        raise InvalidParameterError(name, requirement, items)
    result = tuple(_integer(name, v, requirement) for v in items)
    if result[0] <= 0 or any(b <= a for a, b in itertools.pairwise(result)):
        raise InvalidParameterError(name, requirement, items)
    return result


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """One of a fixed set of strings."""
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        raise InvalidParameterError(name, "one of " + ", ".join(options), value)
    return value
