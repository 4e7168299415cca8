"""`lrkit schedule` end to end: tables, formats, figures and the bad-input contract."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli_run import run
from lrkit import schedules
from lrkit.cli.app import app
from lrkit.cli.schedule_command import option_help, with_registry_options
from lrkit.schedules import registry
from lrkit.schedules.base import Schedule
from lrkit.schedules.curve import ParamValue

TEXTBOOK = ["schedule", "step", "--base-lr", "0.1", "--gamma", "0.9", "--step-size", "50"]


def test_textbook_table_prints(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*TEXTBOOK, "--iters", "350", "--every", "50"], capsys)
    assert code == 0
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows[0] == ["iteration", "lr"]
    assert rows[1:] == [
        ["0", "0.1"],
        ["50", "0.09"],
        ["100", "0.081"],
        ["150", "0.0729"],
        ["200", "0.06561"],
        ["250", "0.059049"],
        ["300", "0.0531441"],
    ]


def test_iterations_stop_below_iters(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run([*TEXTBOOK, "--iters", "300", "--every", "50"], capsys)
    assert out.strip().splitlines()[-1].split()[0] == "250"


def test_json_format(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "out" / "step.json"
    code, out, _ = run(
        [*TEXTBOOK, "--iters", "101", "--every", "50", "--format", "json", "--json", str(path)],
        capsys,
    )
    assert code == 0
    document = json.loads(out)
    assert document == json.loads(path.read_text())
    assert document["name"] == "step"
    assert document["params"] == {"base_lr": 0.1, "gamma": 0.9, "step_size": 50}
    assert document["points"] == [
        {"iteration": 0, "lr": 0.1},
        {"iteration": 50, "lr": pytest.approx(0.09)},
        {"iteration": 100, "lr": pytest.approx(0.081)},
    ]


def test_csv_format(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run([*TEXTBOOK, "--iters", "51", "--every", "50", "--format", "csv"], capsys)
    assert out.strip().splitlines() == ["iteration,lr", "0,0.1", "50,0.09000000000000001"]


def test_max_iter_defaults_to_iters(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        [
            "schedule",
            "poly",
            "--base-lr",
            "1",
            "--power",
            "1",
            "--iters",
            "10",
            "--every",
            "5",
            "--format",
            "json",
        ],
        capsys,
    )
    document = json.loads(out)
    assert document["params"]["max_iter"] == 10
    assert [p["lr"] for p in document["points"]] == [1.0, 0.5]


def test_warmup_option(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        [
            "schedule",
            "fixed",
            "--base-lr",
            "1",
            "--warmup-iters",
            "4",
            "--iters",
            "6",
            "--every",
            "1",
            "--format",
            "json",
        ],
        capsys,
    )
    assert [p["lr"] for p in json.loads(out)["points"]] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def test_compare_with_per_schedule_parameters_draws_one_figure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    figure = tmp_path / "compare.png"
    code, out, _ = run(
        [
            "schedule",
            "--compare",
            "step:gamma=0.5,step_size=100",
            "multistep:gamma=0.5,milestones=100,250",
            "cosine",
            "--base-lr",
            "0.1",
            "--iters",
            "300",
            "--every",
            "100",
            "--plot",
            str(figure),
        ],
        capsys,
    )
    assert code == 0
    header, *rows = (line.split() for line in out.strip().splitlines())
    assert header == ["iteration", "step", "multistep", "cosine"]
    assert rows[1] == ["100", "0.05", "0.05", "0.075"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size > 10_000


def test_compare_without_names_is_caffes_six(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    figure = tmp_path / "caffe.svg"
    code, out, _ = run(["schedule", "--compare", "--iters", "300", "--plot", str(figure)], capsys)
    assert code == 0
    assert out.splitlines()[0].split() == [
        "iteration",
        "fixed",
        "step",
        "multistep",
        "exp",
        "inv",
        "poly",
    ]
    assert figure.read_text().lstrip().startswith("<?xml")


def test_list_prints_every_name_and_formula(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schedule", "--list"], capsys)
    assert code == 0
    assert "step(base_lr, gamma, step_size)" in out
    assert "lr(t) = base_lr * gamma ** floor(t / step_size)" in out
    assert "one_cycle(max_lr, max_iter, pct_start=0.3" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["schedule", "step", "--base-lr", "0", "--gamma", "0.9", "--step-size", "5"],
            "--base-lr must be a finite number > 0, got 0.0",
        ),
        (
            ["schedule", "step", "--base-lr", "inf", "--gamma", "0.9", "--step-size", "5"],
            "--base-lr must be a finite number > 0",
        ),
        (
            ["schedule", "step", "--base-lr", "0.1", "--gamma", "-1", "--step-size", "5"],
            "--gamma must be a finite number > 0",
        ),
        (
            ["schedule", "step", "--base-lr", "0.1", "--gamma", "0.9", "--step-size", "0"],
            "--step-size must be an integer > 0",
        ),
        (
            [
                "schedule",
                "multistep",
                "--base-lr",
                "0.1",
                "--gamma",
                "0.9",
                "--milestones",
                "30,20",
            ],
            "--milestones must be a non-empty, strictly increasing list",
        ),
        (
            ["schedule", "poly", "--base-lr", "0.1", "--power", "1", "--max-iter", "0"],
            "--max-iter must be an integer > 0",
        ),
        (
            ["schedule", "poly", "--base-lr", "0.1", "--power", "-2"],
            "--power must be a finite number >= 0",
        ),
        ([*TEXTBOOK, "--iters", "0"], "--iters must be an integer > 0"),
        (["schedule", "stepp", "--base-lr", "0.1"], "unknown schedule 'stepp'; choose one of"),
        (["schedule", "step", "--base-lr", "abc"], "--base-lr"),
        (
            ["schedule", "multistep", "--base-lr", "0.1", "--gamma", "0.9", "--milestones", "a,b"],
            "--milestones must be comma-separated integers",
        ),
        ([*TEXTBOOK, "--power", "2"], "--power does not apply to step"),
        (["schedule", "step", "--base-lr", "0.1", "--gamma", "0.9"], "step needs --step-size"),
        ([*TEXTBOOK, "--format", "xml"], "--format must be one of table, csv, json"),
        ([*TEXTBOOK, "--plot", "out.gif"], "--plot must end in one of .png, .svg, .pdf"),
        (["schedule", "step:gamma", "--base-lr", "0.1"], "expected key=value"),
        (
            ["schedule", "step:gamma=0.5,gamma=0.9", "--base-lr", "0.1", "--step-size", "5"],
            "schedule spec 'step:gamma=0.5,gamma=0.9': gamma is given more than once",
        ),
        (["schedule", "--three-phase", "step"], "--three-phase does not apply to step"),
        (["schedule"], "give a schedule name"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(args, capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_console_script_bad_input_has_no_traceback() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lrkit",
            "schedule",
            "step",
            "--base-lr",
            "-1",
            "--gamma",
            "0.9",
            "--step-size",
            "5",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr == "lrkit schedule: error: --base-lr must be a finite number > 0, got -1.0\n"
    )


def test_import_lrkit_loads_neither_torch_nor_matplotlib() -> None:
    code = (
        "import sys, lrkit, lrkit.schedules, lrkit.cli.app; "
        "print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_find_lr_and_schedulelr_load_on_first_use() -> None:
    code = (
        "import sys, lrkit; assert 'torch' not in sys.modules; "
        "from lrkit import find_lr, ScheduleLR; print(callable(find_lr), ScheduleLR.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "ScheduleLR"]


def verb_options() -> dict[str, str]:
    """Each option of `lrkit schedule` (its long name) and its help, as typer built them."""
    command = typer.main.get_command(app).commands["schedule"]  # type: ignore[attr-defined]
    return {opt: param.help or "" for param in command.params for opt in param.opts}


@pytest.mark.parametrize("shared", registry.all_params(), ids=lambda s: s.name)
def test_every_registry_parameter_is_an_option_with_a_help_naming_its_schedules(
    shared: registry.SharedParam,
) -> None:
    options = verb_options()
    assert shared.option in options
    assert options[shared.option] == option_help(shared)
    for name, param in shared.uses:
        assert name in options[shared.option]
        assert param.help.replace("``", "").rstrip(".") in options[shared.option]


def test_a_shared_parameter_says_what_it_means_in_each_schedule() -> None:
    help_text = verb_options()["--gamma"]
    assert help_text.startswith("step: the factor applied at each step (0 < gamma < 1 decays).")
    assert "sigmoid: the slope; its sign sets the direction." in help_text
    assert help_text.endswith(
        "cyclic: the per-iteration factor of exp_range (ignored by the other modes), default 1.0."
    )
    assert verb_options()["--max-iter"].endswith("Default here: --iters.")


def test_help_lists_every_parameter_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schedule", "--help"], capsys)
    assert code == 0
    # Each option's entry: its first line up to the next option's, wrapped lines joined.
    entries: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        head = line.strip().split(" ")[0]
        if line.startswith("  -") and head.startswith("--"):
            current = head
            entries[current] = ""
        if current is not None:
            entries[current] += " " + line.strip()
    for shared in registry.all_params():  # (click may break a line after a hyphen)
        assert "".join(option_help(shared).split()) in "".join(entries[shared.option].split())


def bumpy(base_lr: float, bump: float = 0.5, flat: bool = False) -> Schedule:
    """A factory written for this test only.

    lr(t) = base_lr * bump

    Args:
        base_lr: the rate.
        bump: the test's multiplier.
        flat: a flag of the test.
    """

    def schedule(t: int) -> float:
        return base_lr * bump

    return schedule


@pytest.fixture
def with_bumpy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(registry.SCHEDULES, "bumpy", bumpy)
    yield
    registry.describe.cache_clear()


def test_a_new_factorys_parameters_become_options_without_an_edit(with_bumpy: None) -> None:
    seen: dict[str, ParamValue] = {}

    def command(**given: ParamValue) -> None:
        seen.update({k: v for k, v in given.items() if v is not None})

    probe = typer.Typer()
    probe.command()(with_registry_options(command))
    result = CliRunner().invoke(probe, ["--bump", "2", "--flat", "--gamma", "0.5"])
    assert result.exit_code == 0, result.output
    assert seen == {"bump": 2.0, "flat": True, "gamma": 0.5}
    shown = CliRunner().invoke(probe, ["--help"], env={"COLUMNS": "2000"}).output
    assert "bumpy: the test's multiplier, default 0.5." in shown


# Every registry parameter given as its option, and the factory called with the same values:
# the verb's curve must equal the factory's (so each option reaches its parameter, typed).
OPTION_CASES = [
    (["step", "--base-lr", "1", "--gamma", "0.5", "--step-size", "3"], schedules.step(1, 0.5, 3)),
    (
        ["multistep", "--base-lr", "1", "--gamma", "0.5", "--milestones", "3,7"],
        schedules.multistep(1, 0.5, [3, 7]),
    ),
    (["inv", "--base-lr", "1", "--gamma", "0.1", "--power", "0.75"], schedules.inv(1, 0.1, 0.75)),
    (
        ["poly", "--base-lr", "1", "--power", "2", "--max-iter", "12"],
        schedules.poly(1, 2.0, 12),
    ),
    (
        ["constant", "--base-lr", "1", "--factor", "0.5", "--total-iters", "4"],
        schedules.constant(1, 0.5, 4),
    ),
    (
        [
            "linear",
            "--base-lr",
            "1",
            "--max-iter",
            "10",
            "--start-factor",
            "0.2",
            "--end-factor",
            "0.8",
        ],
        schedules.linear(1, 10, 0.2, 0.8),
    ),
    (
        [
            "cosine_restarts",
            "--base-lr",
            "1",
            "--cycle-iters",
            "3",
            "--t-mult",
            "2",
            "--min-lr",
            "0.1",
        ],
        schedules.cosine_restarts(1, 3, 2, 0.1),
    ),
    (
        [
            "cyclic",
            "--base-lr",
            "0.1",
            "--max-lr",
            "1",
            "--step-size",
            "3",
            "--step-size-down",
            "2",
            "--mode",
            "exp_range",
            "--gamma",
            "0.9",
        ],
        schedules.cyclic(0.1, 1, 3, 2, "exp_range", 0.9),
    ),
    (
        [
            "one_cycle",
            "--max-lr",
            "1",
            "--max-iter",
            "20",
            "--pct-start",
            "0.25",
            "--anneal",
            "linear",
            "--div-factor",
            "10",
            "--final-div-factor",
            "100",
            "--three-phase",
        ],
        schedules.one_cycle(1, 20, 0.25, "linear", 10, 100, True),
    ),
    (
        [
            "wsd",
            "--base-lr",
            "1",
            "--max-iter",
            "20",
            "--cooldown-fraction",
            "0.3",
            "--cooldown",
            "cosine",
            "--min-lr",
            "0.1",
        ],
        schedules.wsd(1, 20, 0.3, "cosine", 0.1),
    ),
]


def test_the_option_cases_cover_every_registry_parameter() -> None:
    given = {arg[2:].replace("-", "_") for args, _ in OPTION_CASES for arg in args}
    assert {shared.name for shared in registry.all_params()} <= given


@pytest.mark.parametrize(("args", "expected"), OPTION_CASES, ids=[a[0] for a, _ in OPTION_CASES])
def test_each_option_reaches_its_factory(
    args: list[str], expected: Schedule, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["schedule", *args, "--iters", "25", "--every", "1", "--format", "json"], capsys
    )
    assert code == 0, err
    assert [p["lr"] for p in json.loads(out)["points"]] == [expected(t) for t in range(25)]


def test_a_parameter_that_clashes_with_an_option_of_the_command_is_refused() -> None:
    def command(gamma: int = 0, **given: ParamValue) -> None:
        """A command with an option of its own that a schedule's parameter also names."""

    with pytest.raises(TypeError, match=r"schedule parameters \['gamma'\] clash"):
        with_registry_options(command)
