"""The package's shape (docs/DESIGN.md): no import cycle, no import up a layer, the pure core
and every package's ``__init__`` free of torch, the old module names still importable."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "lrkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}

# Compatibility names of lrkit 0.1: they re-export a new home and are not part of the layers.
COMPAT = {
    "lrkit.programs": "lrkit.rangetest.programs",
    "lrkit.suggestions": "lrkit.rangetest.suggestions",
}


def imports(name: str) -> Iterator[str]:
    """The lrkit modules ``name`` imports, at the top or inside functions."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in MODULES else base for t in targets]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                yield target


GRAPH = {name: set(imports(name)) for name in MODULES if name not in COMPAT}

LAYERS = [
    # 0: errors and argument checks
    ("lrkit.errors", "lrkit.validation", "lrkit.imports", "lrkit.atomic"),
    # 1: the pure core (no torch), and the packages whose __init__ holds torch-free names
    (
        "lrkit.schedules",
        "lrkit.scaling",
        "lrkit.rangetest.core",
        "lrkit.rangetest.programs",
        "lrkit.rangetest.suggestions",
        "lrkit.rangetest.result",
        "lrkit.rangetest.reading",
        "lrkit.rangetest.settings",
        "lrkit.sweep.definition",
        "lrkit.sweep.analysis",
        "lrkit.sweep.engines.names",
        "lrkit.advise.settings",
        "lrkit.advise.candidates",
        "lrkit.advise.plan",
        "lrkit.advise.horizon",
        "lrkit.advise.confidence",
        "lrkit.advise.result",
        "=lrkit.advise",
        "lrkit.batchsize.model",
        "lrkit.batchsize.settings",
        "lrkit.batchsize.result",
        "=lrkit.batchsize",
        "lrkit.laws",
        "=lrkit.rangetest",
        "=lrkit.noise",
        "=lrkit.training",
        "=lrkit.training.vectorized",
        "lrkit.training.optimizers",
    ),
    # 2: training (torch): data, models, loops, the vectorized loop, the noise estimators
    (
        "lrkit.data",
        "lrkit.models",
        "lrkit.training",
        "lrkit.workload",
        "lrkit.noise.estimators",
        "lrkit.laws.transfer",
    ),
    # 3: the range test's driver, noise tracking and the probe inside other trainers
    ("lrkit.rangetest", "lrkit.noise.tracking", "lrkit.noise.on_workload", "lrkit.noise.probe"),
    # 4: sweeps and their engines; advise, which races through them
    ("lrkit.sweep",),
    ("lrkit.advise",),
    # the batch size, which races through advise
    ("lrkit.batchsize",),
    # laws: a ladder of sweeps, a ladder of horizons branched off one run, its models' N, the
    # driver
    (
        "lrkit.laws.ladder",
        "lrkit.laws.branching",
        "lrkit.laws.parameters",
        "lrkit.laws.driver",
    ),
    # 5: the textbook's experiments
    ("lrkit.experiments",),
    # 6, 7, 8, 9: the edges (integrations: lrkit inside other trainers, figure included)
    ("lrkit.plots",),
    ("lrkit.integrations",),
    ("lrkit.report",),
    ("lrkit.cli", "lrkit.__main__"),
]


def layer(name: str) -> int:
    """The layer of ``name``: an exact entry (``=name``, or a module named in full), else the
    longest package entry that holds it."""
    best, length = -1, -1
    for index, names in enumerate(LAYERS):
        for entry in names:
            exact = entry.startswith("=")
            entry = entry.lstrip("=")
            if name == entry:
                size = 10_000
            elif not exact and name.startswith(entry + "."):
                size = len(entry)
            else:
                continue
            if size > length:
                best, length = index, size
    return best


def test_every_module_has_a_layer() -> None:
    assert [n for n in GRAPH if n != "lrkit" and layer(n) < 0] == []


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
        for name, targets in GRAPH.items()
        if name != "lrkit"
        for target in targets
        # a package's __init__ may hand out its own modules (lazily, for those with torch)
        if layer(target) > layer(name) and not target.startswith(name + ".")
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH.get(name, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_engines_do_not_import_each_other_or_the_runner() -> None:
    plumbing = {
        "lrkit.sweep.engines.contract",
        "lrkit.sweep.engines.processes",
        "lrkit.sweep.engines.names",
        "lrkit.sweep.engines.registry",
    }
    engines = [n for n in GRAPH if n.startswith("lrkit.sweep.engines.") and n not in plumbing]
    assert set(engines) == {
        "lrkit.sweep.engines.sequential",
        "lrkit.sweep.engines.stacked",
        "lrkit.sweep.engines.ray",
    }
    for engine in engines:
        assert GRAPH[engine] & {*engines, "lrkit.sweep.runner"} == set(), engine


TORCH_FREE = [
    "lrkit",
    "lrkit.errors",
    "lrkit.validation",
    "lrkit.schedules",
    "lrkit.scaling",
    "lrkit.rangetest",
    "lrkit.rangetest.settings",
    "lrkit.rangetest.reading",
    "lrkit.rangetest.result",
    "lrkit.noise",
    "lrkit.training",
    "lrkit.training.vectorized",
    "lrkit.training.optimizers",
    "lrkit.sweep.definition",
    "lrkit.sweep.analysis",
    "lrkit.sweep.engines.names",
    "lrkit.sweep.engines.registry",
    "lrkit.experiments",
    "lrkit.advise",
    "lrkit.advise.candidates",
    "lrkit.advise.plan",
    "lrkit.advise.horizon",
    "lrkit.advise.confidence",
    "lrkit.advise.result",
    "lrkit.batchsize",
    "lrkit.batchsize.model",
    "lrkit.batchsize.settings",
    "lrkit.batchsize.result",
    "lrkit.laws",
    "lrkit.laws.optimum",
    "lrkit.laws.fit",
    "lrkit.laws.points",
    "lrkit.laws.analysis",
    "lrkit.laws.words",
    "lrkit.laws.settings",
    "lrkit.programs",
    "lrkit.suggestions",
]


def test_the_pure_core_and_package_inits_import_no_torch() -> None:
    """Each module imported alone, in a fresh interpreter (all started at once)."""
    code = "import sys, {}; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", code.format(name)], stdout=subprocess.PIPE, text=True
        )
        for name in TORCH_FREE
    }
    heavy = {}
    for name, process in running.items():
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, name
        if out.split() != ["False", "False"]:
            heavy[name] = out.strip()
    assert heavy == {}


@pytest.mark.parametrize(("old", "new"), sorted(COMPAT.items()))
def test_the_old_module_names_give_the_same_objects(old: str, new: str) -> None:
    import importlib

    before, after = importlib.import_module(old), importlib.import_module(new)
    assert before.__all__
    for name in before.__all__:
        assert getattr(before, name) is getattr(after, name), name
