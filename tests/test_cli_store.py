"""The verbs that read a results store (`runs`, `scale --store`, `report --store`) and the one
that resumes it (`sweep`), on stores that are not what they should be: each case its own
one-line message naming the file (exit 2), read-only verbs that leave the file byte for byte
as it was, a version-1 store read as it is and resumed (migrated), failed trials listed and
run again, and sweep names the store does not hold."""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_run import run
from lrkit.cli.app import main
from lrkit.sweep.definition import SweepDefinition, TrialKey
from lrkit.sweep.store import Store
from lrkit.training.loop import CurvePoint, TrialOutcome
from store_files import digest, downgrade_to_v1, execute, schema_version

SWEEP = [
    "sweep",
    "--lr",
    "0.1,0.3",
    "--batch-size",
    "32,64",
    "--epochs",
    "0.5",
    "--eval-every",
    "0.5",
    "--store",
    "s.sqlite",
]
READERS = {
    "runs": ["runs", "--store", "s.sqlite"],
    "report": ["report", "--store", "s.sqlite", "-o", "r.html"],
    "scale --compare": ["scale", "--compare", "--store", "s.sqlite"],
    "scale --rule fit": [
        *["scale", "--lr", "0.1", "--batch-size", "32", "--to", "64", "--rule", "fit"],
        *["--store", "s.sqlite"],
    ],
}
FAILED = TrialOutcome("failed", None, (), None, 0.2, "RuntimeError: boom")
DONE = TrialOutcome(
    "done",
    None,
    (CurvePoint(0, 0.0, math.nan, 2.3, 0.1), CurvePoint(10, 0.5, 1.0, 0.9, 0.7)),
    0.69,
    0.2,
)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store written by a real (tiny) sweep on the bundled MNIST sample: 4 trials."""
    folder = tmp_path_factory.mktemp("swept")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("LRKIT_DATA_DIR", raising=False)
        assert main(SWEEP) == 0
    return folder / "s.sqlite"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swept: Path) -> Path:
    """A folder holding a copy of the swept store as s.sqlite."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    shutil.copyfile(swept, tmp_path / "s.sqlite")
    return tmp_path


def sql(*statements: str) -> Callable[[Path], None]:
    return lambda path: execute(path, *statements)


def text_file(path: Path) -> None:
    path.write_text("my notes\n")


def other_database(path: Path) -> None:
    path.unlink()
    execute(path, "CREATE TABLE things (x)", "INSERT INTO things VALUES (1)")


def folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def truncated(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(8192)  # the header and the meta table; the rest of the pages gone


NOT_A_STORE = "is not an lrkit results store: it is"
# (case, how to make it from a good store, what the message says, verbs it applies to)
BAD_STORES: list[tuple[str, Callable[[Path], None], str, tuple[str, ...]]] = [
    ("text file", text_file, f"{NOT_A_STORE} not an SQLite database", ()),
    (
        "other database",
        other_database,
        f"{NOT_A_STORE} an SQLite database without lrkit's tables",
        (),
    ),
    ("folder", folder, "is a folder, not an lrkit results store", ()),
    (
        "newer lrkit",
        sql("UPDATE meta SET value = '3' WHERE key = 'schema_version'"),
        "was written by a newer lrkit (store schema version 3; this lrkit reads versions up "
        "to 2): upgrade lrkit to use it",
        (),
    ),
    (
        "no schema version",
        sql("DELETE FROM meta WHERE key = 'schema_version'"),
        "is damaged: its schema version is missing from table meta",
        (),
    ),
    (
        "schema version not a number",
        sql("UPDATE meta SET value = 'two' WHERE key = 'schema_version'"),
        "is damaged: its schema version 'two' is not a number",
        (),
    ),
    ("no meta", sql("DROP TABLE meta"), "is damaged: table meta is missing", ()),
    ("no points", sql("DROP TABLE points"), "is damaged: table points is missing", ()),
    ("no trials", sql("DROP TABLE trials"), "is damaged: table trials is missing", ()),
    (
        "no column",
        sql("ALTER TABLE trials DROP COLUMN test_accuracy"),
        "is damaged: table trials has no column test_accuracy",
        (),
    ),
    (
        "definition not JSON",
        sql("UPDATE sweeps SET definition = '{not json'"),
        "is damaged: sweep 'default' has a definition that is not JSON",
        ("runs", "report", "sweep"),  # scale reads only the trials, which are intact
    ),
    (
        "definition not an object",
        sql("UPDATE sweeps SET definition = '[1, 2]'"),
        "is damaged: sweep 'default' has a definition that is not a JSON object",
        ("runs", "report", "sweep"),
    ),
    ("truncated", truncated, "is damaged: database disk image is malformed", ()),
]
WRITER_HINTS = {"text file": " (give a new file name)", "other database": " (give a new file name)"}
# A sweep checks --store as an output path before anything else (cli/output.py).
WRITER_MESSAGES = {"folder": "is a folder; give a file name"}


def bad_store_cases() -> list[object]:
    verbs = {**READERS, "sweep": SWEEP}
    cases = []
    for case, make, message, only in BAD_STORES:
        for verb, args in verbs.items():
            if only and verb not in only:
                continue
            expected = message + (WRITER_HINTS.get(case, "") if verb == "sweep" else "")
            if verb == "sweep":
                expected = WRITER_MESSAGES.get(case, expected)
            cases.append(pytest.param(make, args, 2, expected, id=f"{case}-{verb}"))
    return cases


@pytest.mark.parametrize(("make", "args", "code", "message"), bad_store_cases())
def test_a_bad_store_is_refused_in_one_line_naming_it_and_left_as_it_was(
    workdir: Path,
    make: Callable[[Path], None],
    args: list[str],
    code: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = workdir / "s.sqlite"
    make(path)
    before = digest(path) if path.is_file() else None
    status, out, err = run(args, capsys)
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert status == code and out == "", err
    assert len(errors) == 1 and "Traceback" not in err
    assert f"--store s.sqlite {message}" in errors[0]
    if args[0] != "sweep":  # a reader was asked for this very file: no other name to give
        assert "file name" not in err
    assert (digest(path) if path.is_file() else None) == before


@pytest.mark.parametrize("args", [pytest.param(a, id=v) for v, a in READERS.items()])
def test_an_empty_file_is_not_a_store_to_read(
    workdir: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "s.sqlite").write_bytes(b"")
    status, _, err = run(args, capsys)
    assert status == 2
    assert "--store s.sqlite is not an lrkit results store: it is an empty file" in err
    assert (workdir / "s.sqlite").read_bytes() == b""


def test_an_empty_file_is_a_new_store_to_a_sweep(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "s.sqlite").write_bytes(b"")  # as a second sweep finds it, while the first
    status, out, err = run(SWEEP, capsys)  # is about to create the schema
    assert status == 0, err
    assert "4 trials, 4 run now, 0 stored" in out


@pytest.mark.parametrize("args", [pytest.param(a, id=v) for v, a in READERS.items()])
def test_reading_verbs_leave_a_good_store_byte_for_byte(
    workdir: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(workdir / "s.sqlite")
    status, _, err = run(args, capsys)
    assert status == 0, err
    assert digest(workdir / "s.sqlite") == before


@pytest.mark.parametrize("args", [pytest.param(a, id=v) for v, a in READERS.items()])
def test_reading_verbs_read_what_a_killed_sweep_left_in_the_wal_and_write_nothing(
    workdir: Path,
    args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A sweep killed with its last trial committed to the write-ahead log, not yet copied
    # into the main file: what a reader must see, and must not copy there itself.
    killed = workdir / "killed"
    killed.mkdir()
    with Store.open(workdir / "s.sqlite") as store:
        record_trial(store, TrialKey(128, 0.1, 0), DONE)
        for name in ("s.sqlite", "s.sqlite-wal"):
            shutil.copyfile(workdir / name, killed / name)
    monkeypatch.chdir(killed)
    before = digest(killed / "s.sqlite")
    status, out, err = run(args, capsys)
    assert status == 0, err
    assert digest(killed / "s.sqlite") == before
    if args[0] == "runs":
        assert "default    128  0.1       0    done" in out


@pytest.mark.parametrize("args", [pytest.param(a, id=v) for v, a in READERS.items()])
def test_a_version_1_store_is_read_as_it_is(
    workdir: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    downgrade_to_v1(workdir / "s.sqlite")
    before = digest(workdir / "s.sqlite")
    status, _, err = run(args, capsys)
    assert status == 0, err
    assert digest(workdir / "s.sqlite") == before and schema_version(workdir / "s.sqlite") == "1"


def test_a_sweep_resumes_a_version_1_store_and_migrates_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, listed, _ = run(READERS["runs"], capsys)
    assert status == 0
    downgrade_to_v1(workdir / "s.sqlite")
    status, out, err = run(SWEEP, capsys)
    assert status == 0, err
    assert "4 trials, 0 run now, 4 stored" in out
    assert schema_version(workdir / "s.sqlite") == "2"
    assert run(READERS["runs"], capsys)[1] == listed


def add_failed_trial(path: Path, key: TrialKey) -> None:
    """Record ``key`` of sweep 'default' as failed, as an engine that caught an error does."""
    with Store.open(path) as store:
        record_trial(store, key, FAILED)


def record_trial(store: Store, key: TrialKey, outcome: TrialOutcome) -> None:
    sweep_id = store.sweep("default", stored_definition(store))
    store.mark_running(sweep_id, key, seed=0)
    store.save_trial(sweep_id, key, outcome)


def stored_definition(store: Store) -> SweepDefinition:
    (row,) = store.sweeps()
    return SweepDefinition(**row.definition)


def test_runs_lists_a_failed_trial_with_its_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_failed_trial(workdir / "s.sqlite", TrialKey(128, 0.1, 0))
    status, out, err = run([*READERS["runs"], "--csv", "t.csv"], capsys)
    assert status == 0, err
    assert "done 4, failed 1" in out
    assert "default: batch 128, lr 0.1, repeat 0: RuntimeError: boom" in out
    with (workdir / "t.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["status"], r["error"]) for r in rows if r["batch_size"] == "128"] == [
        ("failed", "RuntimeError: boom")
    ]
    assert {r["error"] for r in rows if r["status"] == "done"} == {""}


def test_scale_leaves_a_failed_trial_out(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_failed_trial(workdir / "s.sqlite", TrialKey(128, 0.1, 0))
    status, out, err = run(READERS["scale --compare"], capsys)
    assert status == 0, err
    assert "128" not in out  # not measured at all, not "tried at one learning rate"


def test_a_sweep_runs_a_failed_trial_again(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_failed_trial(workdir / "s.sqlite", TrialKey(32, 0.1, 0))
    status, out, err = run(SWEEP, capsys)
    assert status == 0, err
    assert "4 trials, 1 run now, 3 stored" in out
    with Store.open(workdir / "s.sqlite", read_only=True) as store:
        trial = next(t for t in store.trials() if t.key == TrialKey(32, 0.1, 0))
    assert (trial.status, trial.error) == ("done", None)


NO_SUCH_SWEEP = {
    "runs": [*READERS["runs"], "--name", "nosuch"],
    "report": [*READERS["report"], "--name", "nosuch"],
    "scale --compare": [*READERS["scale --compare"], "--name", "nosuch"],
    "scale --rule fit": [*READERS["scale --rule fit"], "--name", "nosuch"],
}


@pytest.mark.parametrize("args", [pytest.param(a, id=v) for v, a in NO_SUCH_SWEEP.items()])
def test_a_sweep_name_the_store_does_not_hold_is_refused_listing_those_it_does(
    workdir: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.open(workdir / "s.sqlite") as store:
        store.sweep("wide", stored_definition(store))
    before = digest(workdir / "s.sqlite")
    status, out, err = run(args, capsys)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert (
        "--name 'nosuch': store s.sqlite has no sweep of that name "
        "(its sweeps: 'default', 'wide')" in err
    )
    assert digest(workdir / "s.sqlite") == before
    status, _, err = run([*args[:-1], "default"], capsys)
    assert status == 0, err
