"""Shared test settings."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Locally every run explores new examples; under CI (CI=true) the examples are derandomized,
# so a result depends on the code alone and a failure reproduces.
settings.register_profile(
    "lrkit",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=int(os.environ.get("LRKIT_HYPOTHESIS_EXAMPLES", "60")),
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("lrkit")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The full MNIST files: $LRKIT_DATA_DIR, else ../shared/data/mnist beside the repository.
    Tests that need them skip (with the reason) where neither exists, as in a user's clone."""
    import os

    candidates = [os.environ.get("LRKIT_DATA_DIR"), str(REPO.parent / "shared" / "data" / "mnist")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    pytest.skip("MNIST not found: set LRKIT_DATA_DIR or put it at ../shared/data/mnist")
