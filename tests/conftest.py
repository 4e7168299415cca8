"""Shared test settings."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "lrkit",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=int(os.environ.get("LRKIT_HYPOTHESIS_EXAMPLES", "60")),
)
settings.load_profile("lrkit")
