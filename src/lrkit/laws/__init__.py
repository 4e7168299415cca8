"""From small runs to the big one (pure core, numpy only): each group's optimum from its band
of near-best runs (``optimum``), power laws (or another of ``forms``) in the optima with
bootstrap intervals,
predictions that say when they are wide or far out, and the held-out check (``fit``)."""

from lrkit.laws.fit import (
    FitSettings,
    HeldOutCheck,
    LawFit,
    Prediction,
    check_largest,
    choose_law,
    fit_law,
)
from lrkit.laws.optimum import STEP_LAW_TOLERANCE, Optimum, band_optimum

__all__ = [
    "STEP_LAW_TOLERANCE",
    "FitSettings",
    "HeldOutCheck",
    "LawFit",
    "Optimum",
    "Prediction",
    "band_optimum",
    "check_largest",
    "choose_law",
    "fit_law",
]
