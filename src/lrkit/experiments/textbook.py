"""The textbook's experiment: its grids and its claims, checked against a run (pure core).

Grids (all with mnist-mlp, plain SGD, 30 epochs, a check every half epoch):
batch 128 x lr {0.2, 0.3, 0.5, 0.8}; lr 0.5 x batch {32, 64, 128, 256};
batch 32 x lr {0.1, 0.3, 0.5, 0.7}; batch 16 x lr {0.1, 0.3, 0.5, 0.7}.
A (batch, lr) pair in two grids is one trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lrkit.sweep.analysis import TrialScore, best_lr_by_batch_size, within_noise


@dataclass(frozen=True)
class Grid:
    name: str
    slug: str
    pairs: tuple[tuple[int, float], ...]
    """(batch size, lr) pairs."""


GRIDS = (
    Grid("batch 128, lr 0.2 .. 0.8", "batch-128", tuple((128, lr) for lr in (0.2, 0.3, 0.5, 0.8))),
    Grid("lr 0.5, batch 32 .. 256", "lr-0.5", tuple((b, 0.5) for b in (32, 64, 128, 256))),
    Grid("batch 32, lr 0.1 .. 0.7", "batch-32", tuple((32, lr) for lr in (0.1, 0.3, 0.5, 0.7))),
    Grid("batch 16, lr 0.1 .. 0.7", "batch-16", tuple((16, lr) for lr in (0.1, 0.3, 0.5, 0.7))),
)


@dataclass(frozen=True)
class Claim:
    """A sentence of the chapter: at ``batch_size`` (within ``grid``), ``lr`` ends best."""

    text: str
    grid: str
    batch_size: int
    lr: float


CLAIMS = (
    Claim("at batch 128, lr 0.5 ends best", "batch-128", 128, 0.5),
    Claim("at batch 32, lr 0.5 is still best", "batch-32", 32, 0.5),
    Claim("at batch 16, lr 0.1 is best", "batch-16", 16, 0.1),
)


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    verdict: str
    """supported (the claimed lr is best), within noise (it is not, but within noise of the
    best), not supported, or not measured (the claimed trial, or every trial of its batch
    size, failed: training raised)."""
    best_lr: float | None
    best_accuracy: float | None
    claimed_accuracy: float | None

    def sentence(self) -> str:
        if self.verdict == "not measured":
            return f"{self.claim.text}: not measured (its trial failed; see lrkit runs)"
        return (
            f"{self.claim.text}: {self.verdict} (best lr {self.best_lr:g} at "
            f"{self.best_accuracy:.4f}; lr {self.claim.lr:g} at {self.claimed_accuracy:.4f} "
            "final validation accuracy)"
        )


def all_pairs() -> tuple[tuple[int, float], ...]:
    """Every (batch size, lr) of every grid, each once, in grid order."""
    return tuple(dict.fromkeys(pair for grid in GRIDS for pair in grid.pairs))


def grid_trials(trials: Sequence[TrialScore], grid: Grid) -> list[TrialScore]:
    pairs = set(grid.pairs)
    return [t for t in trials if (t.batch_size, t.lr) in pairs]


def judge(trials: Sequence[TrialScore], val_size: int | None = None) -> list[Verdict]:
    """Each claim against the trials of its grid, by final validation accuracy."""
    verdicts = []
    grids = {g.slug: g for g in GRIDS}
    for claim in CLAIMS:
        best = best_lr_by_batch_size(grid_trials(trials, grids[claim.grid]), "final", val_size)
        winner = best.get(claim.batch_size)
        claimed = next((s for s in winner.scores if s.lr == claim.lr), None) if winner else None
        if winner is None or claimed is None:
            verdicts.append(Verdict(claim, "not measured", None, None, None))
            continue
        if winner.lr == claim.lr:
            verdict = "supported"
        elif within_noise(winner.scores[0], claimed):
            verdict = "within noise"
        else:
            verdict = "not supported"
        verdicts.append(Verdict(claim, verdict, winner.lr, winner.mean, claimed.mean))
    return verdicts
