"""The forms a law takes, one entry of ``FORMS`` each: how many variables it takes, its
parameters and design matrix (``laws.fit`` solves least squares on logs), its formula with
the fitted numbers, the names of its terms (in a figure's title and every interval's
sentence) and why the CLI says it was kept.

Each form is a polynomial in the ln v_i without cross terms, of ``degree`` in each:

    power (degree 1):          ln y = ln a + sum_i alpha_i ln v_i,  y = a prod_i v_i^alpha_i
    log-quadratic (degree 2):  ln y = ln a + b ln v + c (ln v)^2    (one variable)

Step Law's eta(N, D) = a N^alpha D^beta (Li et al. 2025) and DeepSeek's eta(C) = a C^b (2024)
are the power form; the log-quadratic one follows the best lr of Adam first rising, then
falling with the batch size (Li et al. 2025; Porian et al. 2024). Adding a form is one entry
of ``FORMS`` (its formula's and its terms' wording beside it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lrkit import validation as check
from lrkit.errors import LrkitValueError

Formula = Callable[[str, float, Sequence[str], Sequence[str]], str]
"""(symbol, coefficient a, variables, each exponent as written) -> the law in one line."""


@dataclass(frozen=True)
class LawForm:
    """One form of a law: a polynomial of ``degree`` in each ln v (module docstring)."""

    name: str
    degree: int
    """The highest power of each ln v: 1 for the power law, 2 for the log-quadratic."""
    formula: Formula
    terms: Callable[[Sequence[str]], list[str]]
    """The names of the exponents (every term but ln a), in the order of ``design``."""
    takes: int | None = None
    """How many variables the form takes (None: any number)."""
    why_kept: str = ""
    """What the CLI says where ``choose_law`` kept this form over the power law."""

    def parameters(self, variables: int) -> int:
        """ln a and ``degree`` exponents for each variable."""
        return 1 + self.degree * variables

    def design(self, logs: np.ndarray) -> np.ndarray:
        """The design matrix for rows of ln values: [1, ln v..., (ln v)^2..., ...]."""
        powers = [logs**k for k in range(1, self.degree + 1)]
        return np.hstack([np.ones((logs.shape[0], 1)), *powers])


def _power_formula(
    name: str, coefficient: float, variables: Sequence[str], shown: Sequence[str]
) -> str:
    """``eta* = 0.0566 width^-0.5`` (any number of variables)."""
    terms = " ".join(f"{variable}^{e}" for variable, e in zip(variables, shown, strict=True))
    return f"{name} = {coefficient:.3g} {terms}"


def _log_quadratic_formula(
    name: str, coefficient: float, variables: Sequence[str], shown: Sequence[str]
) -> str:
    """``ln eta* = -2.87 - 0.5 ln width + 0.01 (ln width)^2``."""
    (variable,) = variables
    b, c = shown
    return (
        f"ln {name} = {math.log(coefficient):.3g} {_signed(b)} ln {variable} "
        f"{_signed(c)} (ln {variable})^2"
    )


def _signed(value: str) -> str:
    """``+ 0.5`` or ``- 0.5``: a term after the first, given as written."""
    return f"- {value[1:]}" if value.startswith("-") else f"+ {value}"


POWER = LawForm(
    "power",
    degree=1,
    formula=_power_formula,
    terms=lambda variables: [f"exponent of {name}" for name in variables],
)
FORMS = {
    form.name: form
    for form in (
        POWER,
        LawForm(
            "log-quadratic",
            degree=2,
            formula=_log_quadratic_formula,
            terms=lambda variables: [f"b (of ln {variables[0]})", f"c (of (ln {variables[0]})^2)"],
            takes=1,
            why_kept="it predicted held-out groups better than a power law",
        ),
    )
}
"""Every form by name; the power law first (``choose_law`` keeps it on a tie)."""


def checked_form(name: str, variables: int) -> LawForm:
    """The form called ``name``, checked to take ``variables`` variables."""
    form = FORMS[check.choice("form", name, FORMS)]
    if form.takes is not None and form.takes != variables:
        count = "one variable" if form.takes == 1 else f"{form.takes} variables"
        raise LrkitValueError(f"the {form.name} form takes {count}")
    return form
