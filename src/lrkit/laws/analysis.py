"""Which laws a ladder's runs support, fitted, checked on the largest group and used to
predict (torch-free).

The runs of one model size and horizon (all their batch sizes) form a group, whose best lr
(and, where the batch size varies, best batch size) is read from the band of its near-best
runs. Each group has the law's variables: the size (width or depth), N (parameters),
D (examples seen, examples x epochs), C = 6 N D (training compute in flops: a forward pass
costs 2N per example and the backward pass 4N, Kaplan et al. 2020) and B (batch size).

The laws fitted, by the axes the ladder varies:

- sizes alone: eta*(size), the best lr against width or depth (muP's transfer question);
- horizons alone: eta*(D) (the best lr falls with the horizon: Bjorck et al. 2025);
- both: Step Law's eta*(N, D) = a N^alpha D^beta (Li et al. 2025) and DeepSeek's
  eta*(C) = a C^b (2024); the one of lower leave-one-group-out error predicts;
- batch sizes too: the best batch size against D (Step Law's B*(D) = c D^gamma), against C
  (DeepSeek's B*(C)), or against N and D where both vary; and eta*(B) at the largest group,
  where the ladder has ``MIN_GROUPS`` batch sizes (under Adam the best lr first rises, then
  falls with B: ``choose_law`` may take the log-quadratic form);
- batch sizes alone: eta*(B) at fixed N, D predicts.

One-variable laws take the power or the log-quadratic form (``fit.choose_law``), Step Law's
the power form. Every law is checked on its largest group predicted from the others
(``fit.check_largest``), where it has ``MIN_GROUPS`` groups (two-variable laws one more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lrkit.errors import LrkitValueError
from lrkit.laws.fit import DEFAULT_BOOTSTRAP, FitSettings, check_largest, choose_law, fit_law
from lrkit.laws.optimum import Optimum, band_optimum
from lrkit.laws.points import Ladder, Point

if TYPE_CHECKING:
    from lrkit.laws.fit import Group as FitGroup
    from lrkit.laws.fit import HeldOutCheck, LawFit, Prediction

COMPUTE_FACTOR = 6.0
"""C = COMPUTE_FACTOR * N * D (flops of a forward and a backward pass per example)."""
MIN_GROUPS = 4
"""Groups a one-variable law needs: three to fit with an interval, one more to hold out."""
AXIS_WORDS = {
    "width": "widths",
    "depth": "depths",
    "examples": "training-set sizes",
    "epochs": "horizons",
    "batch_size": "batch sizes",
}
"""A ladder's axes in words."""


class Measured(Protocol):
    """One point's result, as ``laws.ladder.Rung`` gives it."""

    @property
    def point(self) -> Point: ...
    @property
    def parameters(self) -> int: ...
    @property
    def optimum(self) -> Optimum: ...
    @property
    def runs(self) -> tuple[tuple[float, float], ...]: ...


@dataclass(frozen=True)
class Group:
    """The runs of one size and horizon, all batch sizes, and their optima."""

    size: int
    parameters: int
    examples: int
    epochs: float
    lr: Optimum
    batch_size: Optimum | None
    """The best batch size, where the group has several."""
    by_batch: tuple[tuple[int, Optimum], ...]
    """Each batch size's best lr."""

    def values(self, axis: str) -> dict[str, float]:
        return law_values(axis, self.size, self.parameters, self.examples * self.epochs)


def law_values(axis: str, size: int, parameters: int, seen: float) -> dict[str, float]:
    """The laws' variables of a group or a target: its size, N, D and C = 6 N D."""
    return {
        axis: float(size),
        "N": float(parameters),
        "D": seen,
        "C": COMPUTE_FACTOR * parameters * seen,
    }


@dataclass(frozen=True)
class LawSpec:
    """A law to fit: what it predicts, in which variables, after whom."""

    name: str
    quantity: str
    """lr or batch_size."""
    variables: tuple[str, ...]
    source: str
    predicts: bool = True
    """False for a law only reported (eta*(B) beside a law in size or horizon)."""

    @property
    def needed(self) -> int:
        """Groups to fit it and hold one out."""
        return MIN_GROUPS + len(self.variables) - 1


@dataclass(frozen=True)
class NamedLaw:
    """A fitted law, its held-out check and whether it predicts its quantity."""

    spec: LawSpec
    fit: LawFit
    held_out: HeldOutCheck | None
    chosen: bool

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.spec.name,
            "quantity": self.spec.quantity,
            "source": self.spec.source,
            "chosen": self.chosen,
            "fit": self.fit.to_json(),
            "check": None if self.held_out is None else self.held_out.to_json(),
        }


@dataclass(frozen=True)
class Target:
    """Where to predict: a size (its parameter count), a horizon and, optionally, a batch."""

    size: int
    parameters: int
    examples: int
    epochs: float
    batch_size: int | None = None
    extrapolated: str = ""
    """How N was extrapolated from the ladder's counts ('' where it was counted:
    ``laws.parameters``)."""


@dataclass(frozen=True)
class Forecast:
    """The predicted best lr at a target and, where the ladder varies it, batch size."""

    target: Target
    lr: Prediction
    lr_law: str
    batch_size: Prediction | None
    batch_law: str | None
    at_batch_size: int | None
    """The batch size the lr is predicted for (None: at the best batch size)."""


@dataclass(frozen=True)
class LawsAnalysis:
    groups: tuple[Group, ...]
    laws: tuple[NamedLaw, ...]
    transfer: LawFit | None
    """The power law of the best lr in the size at the longest horizon: does it move?"""
    forecast: Forecast | None

    def chosen(self, quantity: str) -> NamedLaw | None:
        return next(
            (law for law in self.laws if law.chosen and law.spec.quantity == quantity), None
        )


def law_specs(ladder: Ladder) -> tuple[LawSpec, ...]:
    """The laws of the module's docstring for the axes ``ladder`` varies."""
    varies = ladder.varies
    size = ladder.axis in varies
    horizon = "examples" in varies or "epochs" in varies
    batch = "batch_size" in varies
    specs: list[LawSpec] = []
    if size and horizon:
        specs += [
            LawSpec("eta*(N, D)", "lr", ("N", "D"), "Step Law (Li et al. 2025)"),
            LawSpec("eta*(C)", "lr", ("C",), "DeepSeek LLM (2024)"),
        ]
    elif size:
        specs.append(LawSpec(f"eta*({ladder.axis})", "lr", (ladder.axis,), "muP's question"))
    elif horizon:
        specs.append(LawSpec("eta*(D)", "lr", ("D",), "Bjorck et al. (2025)"))
    if batch:
        alone = not (size or horizon)
        if alone or len(set(ladder.batch_sizes)) >= MIN_GROUPS:
            specs.append(LawSpec("eta*(B)", "lr", ("B",), "at fixed N and D", predicts=alone))
        if size and horizon:
            specs += [
                LawSpec("B*(N, D)", "batch_size", ("N", "D"), "Step Law (Li et al. 2025)"),
                LawSpec("B*(C)", "batch_size", ("C",), "DeepSeek LLM (2024)"),
            ]
        elif horizon:
            specs.append(LawSpec("B*(D)", "batch_size", ("D",), "Step Law (Li et al. 2025)"))
        elif size:
            specs.append(LawSpec("B*(C)", "batch_size", ("C",), "DeepSeek LLM (2024)"))
    return tuple(specs)


def check_ladder(ladder: Ladder) -> tuple[LawSpec, ...]:
    """The ladder's laws, refusing a ladder too small for the one that predicts the lr."""
    specs = law_specs(ladder)
    if not specs:
        raise LrkitValueError(
            f"the ladder varies nothing: give at least {MIN_GROUPS} values of --{ladder.axis}s, "
            "--epochs, --examples or --batch-size"
        )
    main = next(s for s in specs if s.quantity == "lr" and s.predicts)
    groups = (
        len(set(ladder.batch_sizes))
        if main.variables == ("B",)
        else len({(p.size, p.examples, p.epochs) for p in ladder.points()})
    )
    if groups < main.needed:
        options = {"width": "--widths", "depth": "--depths", "batch_size": "--batch-size"}
        axes = ", ".join(options.get(a, f"--{a}") for a in ladder.varies)
        raise LrkitValueError(
            f"{axes}: {main.name} needs at least {main.needed} groups of runs (to fit it with "
            f"an interval and hold the largest out); the ladder has {groups}"
        )
    return specs


def check_target_batch(ladder: Ladder, batch_size: int | None) -> None:
    """Refuse a batch size to predict the lr at (``--predict-batch-size``) that the ladder's lr
    law cannot take: it takes one only where it is eta*(B) (a ladder of batch sizes alone); a
    ladder of one batch size predicts at that one, and one of sizes or horizons with several
    at the best batch size (its lr law fits each group's optimum there)."""
    if batch_size is None or ladder.varies == ("batch_size",):
        return
    batches = sorted(set(ladder.batch_sizes))
    if len(batches) == 1:
        if batch_size != batches[0]:
            raise LrkitValueError(
                f"--predict-batch-size {batch_size}: the ladder trains at batch size "
                f"{batches[0]} only, so its law predicts the best lr there; give that, or "
                f"ladder --batch-size alone (at least {MIN_GROUPS} values) to predict across "
                "batch sizes"
            )
        return
    words = [AXIS_WORDS[axis] for axis in ladder.varies]
    raise LrkitValueError(
        f"--predict-batch-size {batch_size}: a ladder of {' and '.join(words)} "
        "predicts the best lr at the best batch size (B*, predicted too), not at a given one; "
        f"ladder --batch-size alone (at least {MIN_GROUPS} values) to predict the lr at a "
        "batch size"
    )


def group_runs(rungs: Sequence[Measured]) -> tuple[Group, ...]:
    """The groups of the module's docstring; a group of several batch sizes reads its best
    lr and batch size from the band over all its runs (the widest of its points' bands)."""
    by_key: dict[tuple[int, int, float], list[Measured]] = {}
    for rung in rungs:
        p = rung.point
        by_key.setdefault((p.size, p.examples, p.epochs), []).append(rung)
    groups = []
    for (size, examples, epochs), members in sorted(by_key.items()):
        members.sort(key=lambda r: r.point.batch_size)
        by_batch = tuple((r.point.batch_size, r.optimum) for r in members)
        if len(members) == 1:
            lr, batch = members[0].optimum, None
        else:
            tolerance = max(r.optimum.tolerance for r in members)
            lr = band_optimum([run for r in members for run in r.runs], tolerance)
            batch = band_optimum(
                [(float(r.point.batch_size), loss) for r in members for _, loss in r.runs],
                tolerance,
            )
        groups.append(Group(size, members[0].parameters, examples, epochs, lr, batch, by_batch))
    return tuple(groups)


def spec_groups(
    spec: LawSpec, groups: Sequence[Group], axis: str
) -> dict[tuple[float, ...], FitGroup] | None:
    """The law's groups: its variables' values and the optimum of its quantity; None where
    two groups share the values (a law in C where N D coincide)."""
    if spec.variables == ("B",):
        largest = max(groups, key=lambda g: (g.parameters * g.examples * g.epochs, g.size))
        return {(float(b),): optimum for b, optimum in largest.by_batch}
    found: dict[tuple[float, ...], FitGroup] = {}
    for g in groups:
        values = g.values(axis)
        key = tuple(values[v] for v in spec.variables)
        optimum = g.lr if spec.quantity == "lr" else g.batch_size
        if key in found or optimum is None:
            return None
        found[key] = optimum
    return found


def fit_spec(
    spec: LawSpec, groups: dict[tuple[float, ...], FitGroup], settings: FitSettings
) -> tuple[LawFit, HeldOutCheck | None]:
    """The law (one variable: power or log-quadratic, by held-out error) and its check."""
    variables = list(spec.variables)
    if len(variables) == 1:
        fit = choose_law(groups, variables, settings)
    else:
        fit = fit_law(groups, variables, settings)
    parameters = len(fit.exponents) + 1
    held = None
    if len(groups) >= parameters + 2:
        held = check_largest(groups, variables, settings, form=fit.form)
    return fit, held


def lower_error(laws: Sequence[NamedLaw]) -> NamedLaw:
    """The law of least leave-one-out error (nan last; the first on a tie)."""

    def error(law: NamedLaw) -> float:
        e = law.fit.held_out_error
        return math.inf if math.isnan(e) else e

    best = laws[0]
    for other in laws[1:]:
        if error(other) < error(best) - 1e-9:
            best = other
    return best


def analyse(
    rungs: Sequence[Measured],
    ladder: Ladder,
    target: Target | None = None,
    *,
    seed: int = 0,
    bootstrap: int = DEFAULT_BOOTSTRAP,
) -> LawsAnalysis:
    """Fit every law of ``ladder`` to ``rungs``, check each on its largest group, and predict
    at ``target`` with the law of least held-out error for each quantity."""
    specs = check_ladder(ladder)
    if target is not None:
        check_target_batch(ladder, target.batch_size)
    groups = group_runs(rungs)
    settings = FitSettings(bootstrap=bootstrap, seed=seed)
    fitted: list[tuple[LawSpec, LawFit, HeldOutCheck | None]] = []
    for spec in specs:
        spec_group = spec_groups(spec, groups, ladder.axis)
        if spec_group is None or len(spec_group) < len(spec.variables) + 2:
            continue
        fit, held = fit_spec(spec, spec_group, settings)
        fitted.append((spec, fit, held))
    laws = [NamedLaw(spec, fit, held, False) for spec, fit, held in fitted]
    chosen_names = set()
    for quantity in ("lr", "batch_size"):
        candidates = [law for law in laws if law.spec.quantity == quantity and law.spec.predicts]
        if candidates:
            chosen_names.add(lower_error(candidates).spec.name)
    laws = [
        NamedLaw(law.spec, law.fit, law.held_out, law.spec.name in chosen_names) for law in laws
    ]
    if not any(law.chosen and law.spec.quantity == "lr" for law in laws):
        raise LrkitValueError("no law of the best lr could be fitted to the ladder's groups")
    analysis = LawsAnalysis(groups, tuple(laws), transfer_law(groups, ladder, seed), None)
    if target is None:
        return analysis
    return LawsAnalysis(
        analysis.groups, analysis.laws, analysis.transfer, forecast(analysis, ladder, target)
    )


def transfer_law(groups: Sequence[Group], ladder: Ladder, seed: int) -> LawFit | None:
    """The best lr's power law in the size, over the groups of the longest horizon."""
    if ladder.axis not in ladder.varies:
        return None
    longest = max(g.examples * g.epochs for g in groups)
    at: dict[tuple[float, ...], FitGroup] = {
        (float(g.size),): g.lr for g in groups if g.examples * g.epochs == longest
    }
    if len(at) < 3:
        return None
    return fit_law(at, [ladder.axis], FitSettings(seed=seed))


def forecast(analysis: LawsAnalysis, ladder: Ladder, target: Target) -> Forecast:
    """The chosen laws' predictions at ``target``."""
    values = law_values(
        ladder.axis, target.size, target.parameters, target.examples * target.epochs
    )
    lr_law = analysis.chosen("lr")
    assert lr_law is not None  # analyse refuses a ladder without one
    batch_law = analysis.chosen("batch_size")
    at_batch = target.batch_size
    if lr_law.spec.variables == ("B",):
        if at_batch is None:
            (group,) = analysis.groups
            assert group.batch_size is not None
            at_batch = round(group.batch_size.lr)
        values["B"] = float(at_batch)
    elif len(set(ladder.batch_sizes)) == 1:
        at_batch = ladder.batch_sizes[0]
    else:
        at_batch = None  # the lr law fits each group's optimum at its best batch size
    lr = lr_law.fit.predict(*(values[v] for v in lr_law.spec.variables))
    batch = None
    if batch_law is not None:
        batch = batch_law.fit.predict(*(values[v] for v in batch_law.spec.variables))
    return Forecast(
        target,
        lr,
        lr_law.spec.name,
        batch,
        None if batch_law is None else batch_law.spec.name,
        at_batch,
    )
