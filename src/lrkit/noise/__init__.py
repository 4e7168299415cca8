"""The gradient noise scale (McCandlish, Kaplan, Amodei et al. 2018): ``estimators`` (the
per-example and two-batch estimators of B_simple, and the meter that measures it during
training without touching it) and ``tracking`` (B_simple over a training run, and the
critical batch size it gives).

This package's ``__init__`` imports no torch, so the CLI can check its options first.
"""

ESTIMATORS = ("auto", "per-example", "two-batch")
"""auto (per-example when the model's per-example gradients fit, else two-batch), or one."""
