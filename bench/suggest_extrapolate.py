"""From the race's horizon to the full budget: how ``lrkit advise`` should carry its race's
winner, judged at half the budget T/2, to the lr for the whole budget T. Replayed on the
grid's stored curves at no training cost, as ``suggest_horizon.py`` replays the race.

For each problem and seed s, advise's race (successive halving with the edge rule,
``suggest_horizon.ADVISE``) is replayed on seed s's curves for every window of six
consecutive grid lrs that holds the full budget's best lr ("inside") or has it one to three
grid steps past an end ("outside"). Each way below turns the race into an lr for T; it is
scored on the other seed's final values, as ``suggest_horizon.py`` scores a pick: regret
against that seed's best grid value, within noise when regret <= the floor (0.003
accuracy, log 1.02 of a loss). An lr between grid lrs is scored two ways: "snap", the grid lr
nearest in log (a tie, which the fixed factor makes since sqrt 2 halves a 1-2 step, goes to
the smaller), and "interp", the regret read off the parabola (in log lr) through the three
grid lrs nearest to it, kept within their regrets (the snapped one where one of them
diverged): near an optimum the value is about quadratic in log lr, so a straight line
between grid lrs would charge an lr off the grid too much. An lr past the grid's ends is
scored at the end. Each share is over windows and seeds; "per problem" averages each
problem's share instead, so that a problem with a wide grid counts once.

The ways (x = log lr):

- none: the race's winner at T/2 as it is;
- fixed: today's rule, the winner times ``lrkit.advise.horizon.horizon_factor`` (sqrt 1/2 for
  adam and adamw, else 1, an optimizer by import path included); "fixed, halved": the square
  root of that factor;
- vertex: x2, the optimum at T/2 read as the vertex of a parabola (value, log value for a
  loss, against x) through the best survivor and its neighbours (``suggest_horizon.vertex``);
- drift: the optimum's drift carried to T. x1 is the vertex at T/6 over every candidate of
  the first rung, x2 the vertex at T/2 over the three survivors; with eta*(t) ~ t^-alpha,
  alpha = (x1 - x2) / log 3 and x(T) = x2 - alpha log 2. alpha clamped to [-1, 1] or [0, 1],
  or clamped to [-1, 1] and halved (shrunk towards 0); "drift to fixed": halfway between
  the clamped alpha and the fixed rule's (1/2 for adam and adamw, else 0);
- drift3: as drift, with the survivors' optimum also read at T/3; -alpha is the
  least-squares slope of x against log t over T/6, T/3 and T/2, carried on from x2;
- forecast: the survivors' curves to T/2 extrapolated to T with a power law with a floor, one
  exponent for all (``suggest_forecast.forecast_together``), the best forecast wins;
  forecast vertex: the vertex of those forecasts.

Also reported: alpha's spread over windows and seeds per problem, and the grid's own drift
of the optimum (the vertex over every grid lr at T/6, T/2 and T), early (T/6 to T/2, what the
race can see) and late (T/2 to T, what it must guess).

Problems are read from the stored JSON alone (metric, budget, optimizer, role; the
validation size, for the race's binomial noise, from the accuracies' granularity k/n), so
scheduled problems (a "schedule" or "warmup" in the problem: the grid's lrs are the
recipe's peaks and the curves run along it) are replayed as they are and reported apart.
Families: adaptive (an optimizer whose name holds "adam") and SGD (sgd, momentum, others).

Usage: python bench/suggest_extrapolate.py [--cache-dir bench/results/suggest] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrkit.advise.horizon import horizon_factor
from lrkit.schedules.recipe import Recipe
from lrkit.training.optimizers import OptimizerSpec
from suggest_forecast import forecast_together
from suggest_horizon import (
    ADVISE,
    CANDIDATES,
    FLOOR,
    KEEP_FIRST,
    SHIFT,
    VAL_SIZE,
    Curve,
    Seeded,
    cut,
    extend,
    key_of,
    measured,
    regret,
    seeded,
    top,
    vertex,
    worst,
)

HERE = Path(__file__).resolve().parent
JUDGED = 1 / 2
"""The race's last rung, as a share of the budget."""
HORIZONS = (1 / 6, 1 / 3, 1 / 2)
"""Where drift3 reads the optimum."""


@dataclass(frozen=True)
class Race:
    """What advise's race saw on one seed's curves: the first rung's values at T/6 (every
    candidate), the survivors' values at T/3 and T/2, and the winner."""

    first: dict[int, float]
    third: dict[int, float]
    half: dict[int, float]
    survivors: list[int]
    winner: int


def run_race(window: list[int], curves: Sequence[Curve], epochs: float, metric: str) -> Race:
    """advise's race on the grid (``suggest_horizon.replay`` with ``ADVISE``), keeping what
    each rung measured."""
    alive = extend(window, curves, epochs * HORIZONS[0], metric, ADVISE.flat)
    at = {h: {i: measured(cut(curves[i], epochs * h), metric) for i in alive} for h in HORIZONS}
    survivors = top("measured", alive, curves, epochs * HORIZONS[0], epochs, metric, KEEP_FIRST)
    ranked = top("measured", survivors, curves, epochs * JUDGED, epochs, metric, len(survivors))
    return Race(
        first=at[HORIZONS[0]],
        third={i: at[HORIZONS[1]][i] for i in survivors},
        half={i: at[HORIZONS[2]][i] for i in survivors},
        survivors=survivors,
        winner=ranked[0],
    )


def drift_alpha(race: Race, lrs: Sequence[float], metric: str) -> float:
    """alpha of eta*(t) ~ t^-alpha from the optimum at T/6 (all candidates) and at T/2 (the
    survivors)."""
    x1, x2 = vertex(lrs, race.first, metric), vertex(lrs, race.half, metric)
    return (x1 - x2) / math.log(HORIZONS[2] / HORIZONS[0])


def drift3_alpha(race: Race, lrs: Sequence[float], metric: str) -> float:
    """alpha as minus the least-squares slope of the optimum's log lr against log t at T/6,
    T/3 and T/2."""
    xs = [vertex(lrs, values, metric) for values in (race.first, race.third, race.half)]
    ts = [math.log(h) for h in HORIZONS]
    tm, xm = statistics.fmean(ts), statistics.fmean(xs)
    slope = sum((t - tm) * (x - xm) for t, x in zip(ts, xs, strict=True)) / sum(
        (t - tm) ** 2 for t in ts
    )
    return -slope


@dataclass(frozen=True)
class Way:
    """One way from the race to the budget's lr: ``how`` names the rule; for drift and
    drift3, alpha is clamped to [low, high] and multiplied by ``shrink``."""

    how: str
    low: float = -1.0
    high: float = 1.0
    shrink: float = 1.0

    @property
    def name(self) -> str:
        half = ", halved" if self.shrink != 1 else ""
        if self.how not in ("drift", "drift3"):
            return self.how + half
        return f"{self.how} [{self.low:g},{self.high:g}]{half}"


WAYS = [
    Way("none"),
    Way("fixed"),
    Way("fixed", shrink=0.5),
    Way("vertex"),
    Way("drift"),
    Way("drift", low=0.0),
    Way("drift", shrink=0.5),
    Way("drift3"),
    Way("drift3", low=0.0),
    Way("drift3", shrink=0.5),
    Way("drift to fixed"),
    Way("forecast"),
    Way("forecast vertex"),
]


def forecasts(race: Race, curves: Sequence[Curve], epochs: float, metric: str) -> dict[int, float]:
    """Each survivor's value forecast at T from its checks to T/2."""
    parts = [cut(curves[i], epochs * JUDGED) for i in race.survivors]
    found = forecast_together([(c[0], c[1]) for c in parts], epochs, metric)
    return {
        i: f.value if math.isfinite(f.value) and race.half[i] != worst(metric) else worst(metric)
        for i, f in zip(race.survivors, found, strict=True)
    }


def predict(
    way: Way,
    race: Race,
    problem: dict[str, Any],
    lrs: Sequence[float],
    curves: Sequence[Curve],
) -> float:
    """The log lr ``way`` gives for the budget."""
    metric, epochs = problem["metric"], problem["epochs"]
    winner = math.log(lrs[race.winner])
    if way.how == "none":
        return winner
    # The fixed rule as an alpha: 1/2 for adam and adamw, else 0.
    # (The constant-lr factor, whatever the recipe: advise applies none under a schedule.)
    factor = horizon_factor(OptimizerSpec(problem["optimizer"]), Recipe(), epochs * JUDGED, epochs)
    fixed = -math.log(factor) / math.log(1 / JUDGED)
    if way.how == "fixed":
        return winner - fixed * way.shrink * math.log(1 / JUDGED)
    if way.how == "vertex":
        return vertex(lrs, race.half, metric)
    if way.how.startswith("forecast"):
        ahead = forecasts(race, curves, epochs, metric)
        if way.how == "forecast":
            return math.log(lrs[min(ahead, key=lambda i: key_of(metric)(ahead[i]))])
        return vertex(lrs, ahead, metric)
    alpha = (drift3_alpha if way.how == "drift3" else drift_alpha)(race, lrs, metric)
    alpha = min(max(alpha, way.low), way.high) * way.shrink
    if way.how == "drift to fixed":
        alpha = (alpha + fixed) / 2
    return vertex(lrs, race.half, metric) - alpha * math.log(1 / JUDGED)


def score(x: float, lrs: Sequence[float], regrets: Sequence[float]) -> tuple[float, float]:
    """(snapped, interpolated) regret of log lr ``x`` (see the module's docstring)."""
    logs = [math.log(lr) for lr in lrs]
    x = min(max(x, logs[0]), logs[-1])
    order = sorted(range(len(lrs)), key=lambda i: (round(abs(logs[i] - x), 9), i))
    snap = regrets[order[0]]
    trio = sorted(order[:3])
    ys = [regrets[i] for i in trio]
    if not all(math.isfinite(y) for y in ys):
        return snap, snap
    (x0, x1, x2), (y0, y1, y2) = [logs[i] for i in trio], ys
    got = (
        y0 * (x - x1) * (x - x2) / ((x0 - x1) * (x0 - x2))
        + y1 * (x - x0) * (x - x2) / ((x1 - x0) * (x1 - x2))
        + y2 * (x - x0) * (x - x1) / ((x2 - x0) * (x2 - x1))
    )
    return snap, min(max(got, min(ys)), max(ys))


def validation_size(document: dict[str, Any]) -> int:
    """The validation examples behind the accuracies: the least n with every accuracy k/n
    (1 for a loss, where it is not used)."""
    values = [
        v
        for r in document["runs"]
        for v in r["curve"].get("val_accuracy", [])
        if v is not None and r["optimizer"] == "problem"
    ]
    if document["problem"]["metric"] != "accuracy" or not values:
        return 1
    return next(n for n in range(1, 10**6) if all(abs(v * n - round(v * n)) < 1e-4 for v in values))


def family(optimizer: str) -> str:
    return "adaptive" if "adam" in optimizer.lower() else "sgd"


def set_of(problem: dict[str, Any]) -> str:
    """The problem's role; scheduled problems apart."""
    scheduled = problem.get("schedule") or problem.get("warmup")
    return f"sched {problem['role']}" if scheduled else str(problem["role"])


def grid_optimum(curves: Sequence[Curve], lrs: Sequence[float], at: float, metric: str) -> float:
    """The vertex over every grid lr at epoch ``at``."""
    return vertex(lrs, {i: measured(cut(c, at), metric) for i, c in enumerate(curves)}, metric)


def regrets_of(side: Seeded, metric: str) -> list[float]:
    """The other seed's regret at each grid lr."""
    return [regret(metric, side.finals[side.best], f) for f in side.finals]


def problem_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per seed, window and way."""
    problem = document["problem"]
    metric, epochs, lrs = problem["metric"], problem["epochs"], sorted(problem["grid"])
    floor = FLOOR[metric]
    rows = []
    for side in seeded(document, metric):
        regrets = regrets_of(side, metric)
        first = max(0, side.best - CANDIDATES + 1 - SHIFT)
        last = min(side.best + SHIFT, len(lrs) - CANDIDATES)
        for start in range(first, last + 1):
            window = list(range(start, start + CANDIDATES))
            race = run_race(window, side.curves, epochs, metric)
            common = {
                "seed": side.seed,
                "start": start,
                "outside": max(start - side.best, side.best - (start + CANDIDATES - 1), 0),
                "alpha": drift_alpha(race, lrs, metric),
                "alpha3": drift3_alpha(race, lrs, metric),
            }
            for way in WAYS:
                x = predict(way, race, problem, lrs, side.curves)
                snap, interp = score(x, lrs, regrets)
                rows.append(
                    {
                        **common,
                        "way": way.name,
                        "factor": math.exp(x) / lrs[side.best],
                        "snap": snap,
                        "interp": interp,
                        "within": snap <= floor,
                        "within_interp": interp <= floor,
                    }
                )
    return rows


def grid_drift(document: dict[str, Any]) -> list[dict[str, float]]:
    """Per seed, the grid's optimum's alpha from T/6 to T/2 and from T/2 to T."""
    problem = document["problem"]
    metric, epochs, lrs = problem["metric"], problem["epochs"], sorted(problem["grid"])
    out = []
    for side in seeded(document, metric):
        x = [grid_optimum(side.curves, lrs, epochs * h, metric) for h in (1 / 6, 1 / 2, 1)]
        out.append(
            {
                "seed": side.seed,
                "early": (x[0] - x[1]) / math.log(3),
                "late": (x[1] - x[2]) / math.log(2),
            }
        )
    return out


UNSEEN = "unseen"
"""Every constant-lr set but the tuning one, together."""


def sets_of(row: dict[str, Any]) -> list[str]:
    """The row's set, and unseen where it is one of those."""
    unseen = row["set"] != "tuning" and not row["set"].startswith("sched")
    return [row["set"], UNSEEN] if unseen else [row["set"]]


def share(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(r[key] for r in rows) if rows else math.nan


def by_problem(rows: list[dict[str, Any]], key: str) -> float:
    """The share averaged per problem (each problem counts once, whatever its windows)."""
    names = sorted({r["problem"] for r in rows})
    return statistics.fmean(share([r for r in rows if r["problem"] == n], key) for n in names)


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per set (and unseen), family, inside/outside and way: the share within noise (snapped,
    interpolated; per window, and per problem) and the median factor predicted / best."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        where = "inside" if row["outside"] == 0 else "outside"
        for part in sets_of(row):
            groups.setdefault((part, row["family"], where, row["way"]), []).append(row)
    return [
        {
            "set": part,
            "family": fam,
            "best": where,
            "way": way,
            "n": len(group),
            "problems": len({r["problem"] for r in group}),
            "within": share(group, "within"),
            "within_interp": share(group, "within_interp"),
            "within_by_problem": by_problem(group, "within"),
            "median_factor": statistics.median(r["factor"] for r in group),
        }
        for (part, fam, where, way), group in sorted(groups.items())
    ]


def set_order(name: str) -> tuple[bool, bool, bool, str]:
    """Tuning first, then the others, unseen, and the scheduled sets last."""
    return name.startswith("sched"), name == UNSEEN, "tuning" not in name, name


def print_roles(summary: list[dict[str, Any]], fam: str) -> None:
    """Inside windows, snapped: the share within noise per set, and the median factor."""
    entries = {
        (e["set"], e["way"]): e for e in summary if e["family"] == fam and e["best"] == "inside"
    }
    sets = sorted({part for part, _ in entries}, key=set_order)
    print(f"\n{fam}: best inside the six, share within noise (snapped) per set; x: the median")
    print("factor predicted/best lr")
    width = {s: max(9, len(s) + 2) for s in sets}
    shown = [s for s in sets if s in GROUPS or s.startswith("sched")]
    head = "".join(f"{'x ' + s:>{width[s] + 2}}" for s in shown)
    print(f"{'way':22}" + "".join(f"{s:>{width[s]}}" for s in sets) + head)
    for way in (w.name for w in WAYS):
        cells = "".join(
            f"{entries[s, way]['within']:{width[s]}.2f}" if (s, way) in entries else " " * width[s]
            for s in sets
        )
        factors = "".join(f"{entries[s, way]['median_factor']:{width[s] + 2}.2f}" for s in shown)
        print(f"{way:22}{cells}{factors}")
    counts = (f"{entries[s, 'none']['n']}/{entries[s, 'none']['problems']}" for s in sets)
    print(
        f"{'windows/problems':22}"
        + "".join(f"{c:>{width[s]}}" for c, s in zip(counts, sets, strict=True))
    )


GROUPS = ("tuning", UNSEEN)
"""The constant-lr sets :func:`print_views` shows (with every scheduled set)."""


def print_views(summary: list[dict[str, Any]], fam: str) -> None:
    """Each set group (tuning, unseen, scheduled ones) seen four ways: inside snapped,
    inside interpolated, inside per problem, outside snapped."""
    entries = {(e["set"], e["best"], e["way"]): e for e in summary if e["family"] == fam}
    groups = [s for s in sorted({k[0] for k in entries}, key=set_order) if s in GROUPS]
    groups += [s for s in sorted({k[0] for k in entries}) if s.startswith("sched")]
    views = [("inside", "within"), ("inside", "within_interp")]
    views += [("inside", "within_by_problem"), ("outside", "within")]
    print(f"\n{fam}: share within noise, best inside: snapped, interpolated, per problem;")
    print("best outside: snapped")
    print((f"{'':24}" + "".join(f"{g:<24}" for g in groups)).rstrip())
    print((f"{'way':24}" + "  in  int  pro  out    " * len(groups)).rstrip())
    for way in (w.name for w in WAYS):
        cells = ""
        for group in groups:
            for where, key in views:
                entry = entries.get((group, where, way))
                cells += f"{entry[key]:5.2f}" if entry else "    -"
            cells += "    "
        print(f"{way:22}  {cells}".rstrip())


def ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    for k, i in enumerate(order):
        out[i] = float(k)
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Rank correlation (ties by order)."""
    return statistics.correlation(ranks(a), ranks(b)) if len(a) > 2 else math.nan


def alpha_spread(
    rows: list[dict[str, Any]], drift: dict[str, list[dict[str, float]]]
) -> list[dict[str, Any]]:
    """Per problem: the race's alpha over its inside windows (median, quartiles, the median
    per seed), and the grid's own early and late alpha per seed."""
    out = []
    sets = {r["problem"]: r["set"] for r in rows}
    for name in sorted(sets, key=lambda n: (set_order(sets[n]), n)):
        mine = [r for r in rows if r["problem"] == name and r["way"] == "none"]
        mine = [r for r in mine if r["outside"] == 0]
        alphas = sorted(r["alpha"] for r in mine)
        quartiles = statistics.quantiles(alphas, n=4) if len(alphas) > 1 else alphas * 3
        seeds = sorted({r["seed"] for r in mine})
        out.append(
            {
                "problem": name,
                "set": sets[name],
                "family": mine[0]["family"],
                "n": len(alphas),
                "median": statistics.median(alphas),
                "q1": quartiles[0],
                "q3": quartiles[-1],
                "by_seed": [
                    statistics.median(r["alpha"] for r in mine if r["seed"] == s) for s in seeds
                ],
                "grid_early": [d["early"] for d in drift[name]],
                "grid_late": [d["late"] for d in drift[name]],
            }
        )
    return out


def alpha_agreement(spread: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per family (constant-lr and scheduled apart): how the alphas agree across problems
    and seeds (rank correlations), and the median late alpha (the grid's, T/2 to T)."""
    out = []
    for fam in ("sgd", "adaptive"):
        for scheduled in (False, True):
            mine = [e for e in spread if e["family"] == fam]
            mine = [e for e in mine if e["set"].startswith("sched") == scheduled]
            pairs = [e for e in mine if len(e["grid_late"]) == 2 == len(e["by_seed"])]
            early = [a for e in pairs for a in e["grid_early"]]
            late = [a for e in pairs for a in e["grid_late"]]
            race = [a for e in pairs for a in e["by_seed"]]
            if len(pairs) < 3:
                continue
            out.append(
                {
                    "family": fam,
                    "scheduled": scheduled,
                    "problems": len(pairs),
                    "early_vs_late": spearman(early, late),
                    "race_vs_late": spearman(race, late),
                    "race_seed0_vs_seed1": spearman(
                        *zip(*(e["by_seed"] for e in pairs), strict=True)
                    ),
                    "late_seed0_vs_seed1": spearman(
                        *zip(*(e["grid_late"] for e in pairs), strict=True)
                    ),
                    "median_early": statistics.median(early),
                    "median_late": statistics.median(late),
                    "median_race": statistics.median(race),
                }
            )
    return out


def print_alpha(spread: list[dict[str, Any]], agreement: list[dict[str, Any]]) -> None:
    print("\nalpha (eta* ~ t^-alpha), the race's over inside windows: median [quartiles], per")
    print("seed; the grid's own optimum, early (T/6 to T/2) and late (T/2 to T), per seed")
    for e in spread:
        seeds = " ".join(f"{a:5.2f}" for a in e["by_seed"])
        early = " ".join(f"{a:5.2f}" for a in e["grid_early"])
        late = " ".join(f"{a:5.2f}" for a in e["grid_late"])
        print(
            f"{e['problem']:26} {e['set']:>12} {e['family'][:3]} {e['median']:5.2f} "
            f"[{e['q1']:5.2f},{e['q3']:5.2f}] {seeds} | {early} | {late}"
        )
    print("rank correlations over problems x seeds: grid early~late, race~grid late, seed 0~1")
    print("(race, grid late); medians: grid early, grid late, race")
    for a in agreement:
        kind = "scheduled" if a["scheduled"] else "constant"
        print(
            f"  {a['family']:8} {kind:9} {a['problems']:3d} problems: {a['early_vs_late']:5.2f} "
            f"{a['race_vs_late']:5.2f} {a['race_seed0_vs_seed1']:5.2f} "
            f"{a['late_seed0_vs_seed1']:5.2f}; {a['median_early']:5.2f} {a['median_late']:5.2f} "
            f"{a['median_race']:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=HERE / "results" / "suggest")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "suggest_extrapolate.json")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    drift: dict[str, list[dict[str, float]]] = {}
    for path in sorted(args.cache_dir.glob("*.json")):
        document = json.loads(path.read_text())
        problem = document["problem"]
        if problem["role"] == "fresh 5":
            continue  # run after this experiment chose the horizon, at issue 27's end
        VAL_SIZE[0] = validation_size(document)
        tags = {"problem": problem["name"], "set": set_of(problem)}
        tags["family"] = family(problem["optimizer"])
        rows.extend({**tags, **row} for row in problem_rows(document))
        drift[problem["name"]] = grid_drift(document)
    summary = summarise(rows)
    for fam in ("sgd", "adaptive"):
        print_roles(summary, fam)
    for fam in ("sgd", "adaptive"):
        print_views(summary, fam)
    spread = alpha_spread(rows, drift)
    agreement = alpha_agreement(spread)
    print_alpha(spread, agreement)
    document = {"summary": summary, "alpha": spread, "alpha_agreement": agreement}
    args.out.write_text(json.dumps(document, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
