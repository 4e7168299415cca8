"""The engines' names, spelled here once (torch-free, so settings can check them cheaply).

``auto`` is not an engine but a request: the vectorized engine where the model and optimizer
allow, else the sequential one (``sweep.engines.registry.choose_engine``)."""

from __future__ import annotations

AUTO = "auto"
SEQUENTIAL = "sequential"
"""Each trial on the plain loop, one at a time or side by side in worker processes."""
VECTORIZED = "vectorized"
"""Trials of one batch size in lockstep as one stacked network."""
RAY = "ray"
"""Stacks, or single trials, as Ray tasks on a local instance or a cluster."""

LOCAL_ENGINES = (AUTO, SEQUENTIAL, VECTORIZED)
"""What runs in this process and its forked workers: a range test or a reproduction."""
ENGINES = (*LOCAL_ENGINES, RAY)
"""What a sweep, advise's race or a laws ladder may run on."""


def may_stack(name: str) -> bool:
    """Whether a run asking for engine ``name`` may stack its trials (all but sequential)."""
    return name != SEQUENTIAL
