"""Bad schedule text on the command line: exit 2, one error line that names a flag the verb
has, and for a sweep, no training and no store.

`lrkit schedule` has an option for each parameter, so its messages say ``--gamma``; `lrkit
sweep` takes a whole schedule in one option, so its messages name that option and the text
and spell the parameters as the text does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from cli_run import run
from lrkit.cli.app import app

SCHEDULE_VERB = [
    (
        ["step:gamma=0.5,gamma=0.9", "--base-lr", "0.1", "--step-size", "5"],
        "schedule spec 'step:gamma=0.5,gamma=0.9': gamma is given more than once",
    ),
    (
        ["step:step-size=5,step_size=6", "--base-lr", "0.1", "--gamma", "0.5"],
        "step_size is given more than once",
    ),
    (
        ["cosine:warmup_iters=2,warmup_iters=3", "--base-lr", "0.1"],
        "warmup_iters is given more than once",
    ),
    (["step:=5", "--base-lr", "0.1"], "schedule spec 'step:=5': the key in '=5' is blank"),
    (
        [":gamma=0.5", "--base-lr", "0.1"],
        "schedule spec ':gamma=0.5': the schedule name before ':' is blank",
    ),
    ([""], "the schedule name before ':' is blank; write NAME:key=value,... with NAME one of"),
    (["step:gamma", "--base-lr", "0.1"], "expected key=value, got 'gamma'"),
    (["step:power=2", "--base-lr", "0.1"], "step takes base_lr, gamma, step_size, not power"),
    (
        ["step:gamma=abc,step_size=5", "--base-lr", "0.1"],
        "--gamma must be a number, got 'abc'",
    ),
    (
        ["step:gamma=-1,step_size=5", "--base-lr", "0.1"],
        "--gamma must be a finite number > 0, got -1.0",
    ),
    (["cosine:min_lr=abc", "--base-lr", "0.1"], "--min-lr must be a number, got 'abc'"),
    (
        ["multistep:milestones=20,10,gamma=0.5", "--base-lr", "0.1"],
        "--milestones must be a non-empty, strictly increasing list",
    ),
    (
        ["fixed", "--base-lr", "0.1", "--iters", "1000000000", "--every", "1"],
        "--iters 1000000000 with --every 1 prints 1000000000 rows; at most 100000",
    ),
]

SWEEP_SCHEDULE = [
    (
        "step:gamma=0.5,gamma=0.9,step_size=2",
        "--schedule 'step:gamma=0.5,gamma=0.9,step_size=2': gamma is given more than once",
    ),
    ("step:=5", "--schedule 'step:=5': the key in '=5' is blank"),
    (":gamma=0.5", "--schedule ':gamma=0.5': the schedule name before ':' is blank"),
    ("step:gamma", "--schedule 'step:gamma': expected key=value, got 'gamma'"),
    ("nosuch", "--schedule 'nosuch': unknown schedule 'nosuch'; choose one of: fixed, step"),
    (
        "cosine:min_lr=abc",
        "--schedule 'cosine:min_lr=abc': min_lr must be a number, got 'abc'",
    ),
    (
        "step:gamma=-1,step_size=10",
        "--schedule 'step:gamma=-1,step_size=10': gamma must be a finite number > 0, got -1.0",
    ),
    (
        "step:gamma=0.5,step_size=0",
        "--schedule 'step:gamma=0.5,step_size=0': step_size must be an integer > 0, got 0",
    ),
    ("step:step_size=0", "--schedule 'step:step_size=0': step needs gamma"),
    ("step", "--schedule 'step': step needs gamma, step_size"),
    (
        "step:power=2,gamma=0.5,step_size=2",
        "--schedule 'step:power=2,gamma=0.5,step_size=2': step takes gamma, step_size, not power",
    ),
    (
        "step:base_lr=1,gamma=0.5,step_size=2",
        "base_lr comes from the trial's --lr; leave it out",
    ),
    ("one_cycle:max_lr=1", "--schedule 'one_cycle:max_lr=1': max_lr comes from the trial's --lr"),
    (
        "cyclic:max_lr=0.05,step_size=5",
        "--schedule 'cyclic:max_lr=0.05,step_size=5': max_lr must be > base_lr (0.1), got 0.05",
    ),
    (
        "multistep:gamma=0.5,milestones=20,10",
        "milestones must be a non-empty, strictly increasing list of integers > 0, got [20,10]",
    ),
    (
        "one_cycle:three_phase=yes",
        "three_phase must be one of true, false, 1, 0, got 'yes'",
    ),
]

SWEEP_BATCH_SIZE_SCHEDULE = [
    (
        "factor=x,milestones=10",
        "--batch-size-schedule 'factor=x,milestones=10': factor must be a number, got 'x'",
    ),
    (
        "milestones=20,10",
        "--batch-size-schedule 'milestones=20,10': milestones must be a non-empty, strictly "
        "increasing list of integers > 0, got [20,10]",
    ),
    (
        "milestones=10,20",
        "--batch-size-schedule 'milestones=10,20': batch_size_steps needs factor "
        "(e.g. factor=2,milestones=10,20)",
    ),
    (
        "factor=2,milestones=20,10",
        "--batch-size-schedule 'factor=2,milestones=20,10': milestones must be a non-empty, "
        "strictly increasing list",
    ),
    (
        "factor=2,milestones=a",
        "milestones must be comma-separated integers, got 'a'",
    ),
    ("factor=2", "batch_size_steps needs milestones (e.g. factor=2,milestones=10,20)"),
    (
        "factor=2,factor=3,milestones=1",
        "--batch-size-schedule 'factor=2,factor=3,milestones=1': factor is given more than once",
    ),
    ("=2,milestones=1", "the key in '=2' is blank"),
    ("factor", "--batch-size-schedule 'factor': expected key=value, got 'factor'"),
    ("factor=1,milestones=1", "factor must be a finite number > 1, got 1.0"),
    (
        "base_batch_size=8,factor=2,milestones=1",
        "base_batch_size comes from --batch-size; leave it out",
    ),
    (
        "factor=2,milestones=1,max_batch_size=8",
        "max_batch_size must be >= base_batch_size (16), got 8",
    ),
    (
        "growth=2",
        "batch_size_steps takes factor, milestones, max_batch_size, not growth",
    ),
]

SMALL_SWEEP = ["--lr", "0.1", "--batch-size", "16", "--epochs", "0.5", "--eval-every", "0.5"]


def options_of(verb: str) -> set[str]:
    command = typer.main.get_command(app).commands[verb]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in param.opts}


def error_line(verb: str, err: str) -> str:
    """The one error line of ``err``; its flags must be options of ``verb``."""
    (line,) = [line for line in err.splitlines() if line.startswith(f"lrkit {verb}: error: ")]
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
    assert named <= options_of(verb), named - options_of(verb)
    return line


@pytest.mark.parametrize(("args", "message"), SCHEDULE_VERB)
def test_lrkit_schedule_refuses_bad_text(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["schedule", *args], capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in error_line("schedule", err)


@pytest.mark.parametrize(
    ("option", "text", "message"),
    [("--schedule", t, m) for t, m in SWEEP_SCHEDULE]
    + [("--batch-size-schedule", t, m) for t, m in SWEEP_BATCH_SIZE_SCHEDULE],
)
def test_lrkit_sweep_refuses_bad_text_before_training_or_a_store(
    option: str,
    text: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)  # the bundled sample: small and fast
    store = tmp_path / "s.sqlite"
    code, out, err = run(["sweep", *SMALL_SWEEP, "--store", str(store), option, text], capsys)
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert message in error_line("sweep", err)
    assert not store.exists()
