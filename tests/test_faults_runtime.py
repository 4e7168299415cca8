"""Faults while running: memory that stays bounded on any budget, workers that end with their
parent, no trial left ``running`` after an interruption, a closed output pipe, and a Ray
cluster that cannot be reached."""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn

from cli_run import run
from lrkit.data.mnist import bundled_sample_dir
from lrkit.data.tensors import TensorData
from lrkit.laws.branching import run_branched
from lrkit.sweep.definition import SweepDefinition, product_grid
from lrkit.sweep.engines import ray as ray_engine
from lrkit.sweep.engines.registry import EngineRequest
from lrkit.sweep.runner import SweepEvents, run_sweep
from lrkit.sweep.store import Store
from lrkit.sweep.trials import SweepPlan
from lrkit.training.data_parallel import DataParallel
from lrkit.training.loop import TrialHooks, TrialPlan, train_trial
from lrkit.training.running_loss import RunningLoss
from lrkit.training.vectorized.loop import StackedRun, StackedTrial
from lrkit.workload import Workload


def free_port() -> int:
    """A local TCP port that nothing listens on (as the system handed it out just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Memory: the training loss between two checks


def test_the_interval_mean_is_the_float64_mean_of_the_steps() -> None:
    losses = RunningLoss(2, torch.device("cpu"))
    steps = torch.tensor([[0.5, 2.0], [1.25, 3.0], [0.25, 4.0]], dtype=torch.float32)
    for step in steps:
        losses.add(step)
    interval = losses.read(iteration=12)
    assert interval.mean == (2.0 / 3.0, 3.0)
    assert interval.diverged_at == (None, None)


@pytest.mark.parametrize(
    ("values", "diverged_at"),
    [
        ([1.0, math.nan, 1.0, 1.0], 11),
        ([1.0, 1.0, 1.0, math.inf], 13),
        ([math.inf, -math.inf, 1.0, 1.0], 10),  # inf - inf: the sum becomes nan, still bad
        ([-math.inf, 1.0, 1.0, 1.0], 10),
        ([1.0, 1.0, 1.0, 1.0], None),
    ],
)
def test_a_trial_diverged_at_its_first_loss_that_was_not_finite(
    values: list[float], diverged_at: int | None
) -> None:
    """Four steps ending at iteration 13 are iterations 10 to 13."""
    losses = RunningLoss(1, torch.device("cpu"))
    for value in values:
        losses.add(torch.tensor(value))
    assert losses.read(iteration=13).diverged_at == (diverged_at,)


def test_a_new_interval_starts_from_nothing_for_the_trials_that_stay() -> None:
    losses = RunningLoss(3, torch.device("cpu"))
    losses.add(torch.tensor([1.0, math.nan, 2.0]))
    losses.restart(2)
    losses.add(torch.tensor([5.0, 7.0]))
    interval = losses.read(iteration=2)
    assert interval.mean == (5.0, 7.0)
    assert interval.diverged_at == (None, None)


def test_a_loss_that_requires_grad_builds_no_graph_in_the_sum() -> None:
    weight = torch.ones((), requires_grad=True)
    losses = RunningLoss(1, torch.device("cpu"))
    losses.add(weight * 3.0)
    assert not losses.total.requires_grad


def interval_on_rank(rank: int, port: int, losses: list[float], results: Any) -> None:
    """One rank of a two-process gloo job: its losses through ``RunningLoss.over_ranks``."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        running = RunningLoss(1, torch.device("cpu"))
        for loss in losses:
            running.add(torch.tensor(loss))
        running.over_ranks()
        results.put((rank, running.read(iteration=8)))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="this torch has no gloo"
)
@pytest.mark.parametrize(
    ("second_rank", "mean", "diverged_at"),
    [([3.0, 4.0, 5.0, 6.0], 3.5, None), ([3.0, 4.0, math.nan, 6.0], math.nan, 7)],
)
def test_a_data_parallel_interval_is_the_mean_over_ranks_and_diverges_with_any_rank(
    second_rank: list[float], mean: float, diverged_at: int | None
) -> None:
    """Iterations 5 to 8 on two ranks: the first rank's losses 1, 2, 3, 4."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = free_port()
    ranks = [
        context.Process(target=interval_on_rank, args=(rank, port, losses, results))
        for rank, losses in enumerate([[1.0, 2.0, 3.0, 4.0], second_rank])
    ]
    for process in ranks:
        process.start()
    intervals = dict(results.get(timeout=60) for _ in ranks)
    for process in ranks:
        process.join(timeout=60)
    for interval in intervals.values():  # every rank reads the same interval
        assert interval.mean[0] == pytest.approx(mean, nan_ok=True)
        assert interval.diverged_at == (diverged_at,)


class LiveTensors:
    """The tensors alive (``gc``) just after the optimizer's step at iterations ``at``: a
    loop that keeps every step's loss until the next check holds one more each step."""

    def __init__(self, at: tuple[int, ...]) -> None:
        self.at, self.counts, self.steps = at, [], 0  # type: ignore[var-annotated]

    def after(self, step: Callable[[], object]) -> Callable[[], object]:
        def counted() -> object:
            result = step()
            self.steps += 1
            if self.steps in self.at:
                self.counts.append(sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects()))
            return result

        return counted

    def growth(self) -> int:
        return int(self.counts[-1] - self.counts[0])


STEPS = 120
"""One check at the end of one epoch of 120 examples at batch size 1."""
LONG_INTERVAL = TrialPlan(lr=0.01, batch_size=1, epochs=1, eval_every=1, seed=0)


def examples(n: int) -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return TensorData(x, (x[:, 0] > 0).long())


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Steps this small are all hand-offs between threads on a busy machine: one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_the_plain_loop_holds_no_more_tensors_as_steps_pass_between_checks() -> None:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    live = LiveTensors((10, 110))
    optimizer.step = live.after(optimizer.step)  # type: ignore[method-assign,assignment]
    loss = nn.CrossEntropyLoss()
    outcome = train_trial(
        model, optimizer, loss, examples(STEPS), examples(20), None, LONG_INTERVAL
    )
    assert outcome.points[-1].iteration == STEPS
    assert live.growth() < 10, live.counts  # 100 steps apart: not one tensor a step


@pytest.mark.usefixtures("one_thread")
def test_the_data_parallel_loop_holds_no_more_tensors_as_steps_pass_between_checks() -> None:
    """In one process (a world of one), the loop of a torchrun job."""
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    live = LiveTensors((10, 110))
    optimizer.step = live.after(optimizer.step)  # type: ignore[method-assign,assignment]
    loss = nn.CrossEntropyLoss()
    outcome = train_trial(
        model,
        optimizer,
        loss,
        examples(STEPS),
        examples(20),
        None,
        LONG_INTERVAL,
        TrialHooks(sharding=DataParallel()),
    )
    assert outcome.points[-1].iteration == STEPS
    assert live.growth() < 10, live.counts


@pytest.mark.usefixtures("one_thread")
def test_the_vectorized_loop_holds_no_more_tensors_as_steps_pass_between_checks() -> None:
    trials = [StackedTrial(LONG_INTERVAL), StackedTrial(LONG_INTERVAL)]
    data = examples(STEPS)
    run = StackedRun(
        [small_model(), small_model()], trials, nn.CrossEntropyLoss(), data, examples(20), None
    )
    live = LiveTensors((10, 110))
    run.sgd.step = live.after(run.sgd.step)  # type: ignore[method-assign,assignment]
    outcomes = run.run()
    assert [o.points[-1].iteration for o in outcomes] == [STEPS, STEPS]
    assert live.growth() < 10, live.counts


# Interrupted runs leave no trial `running` in the store


def toy_workload() -> Workload:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(260, 6, generator=g)
    y = (x[:, 0] > x[:, 1]).long()

    def make(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))

    parts = TensorData(x[:160], y[:160]), TensorData(x[160:210], y[160:210])
    return Workload("toy", make, *parts, TensorData(x[210:], y[210:]), nn.CrossEntropyLoss(), "toy")


def toy_plan(epochs: float = 2.0, name: str = "toy") -> SweepPlan:
    definition = SweepDefinition(
        model="toy",
        data="toy",
        loss="cross_entropy",
        epochs=epochs,
        eval_every=0.5,
        val_fraction=0.0,
        optimizer="sgd",
        momentum=0.0,
        weight_decay=0.0,
        schedule=None,
        batch_size_schedule=None,
        seed=0,
    )
    return SweepPlan(name, definition, product_grid((0.05, 0.1, 0.2), (16, 32), 1))


def statuses(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [status for (status,) in db.execute("SELECT status FROM trials ORDER BY id")]
    finally:
        db.close()


class CtrlC:
    """A callback that raises KeyboardInterrupt on its ``at``-th call, as Ctrl-C would
    arrive in the middle of the run."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, *args: object) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("engine", ["sequential", "vectorized"])
def test_a_sweep_interrupted_mid_trial_keeps_finished_trials_and_none_running(
    tmp_path: Path, engine: str
) -> None:
    """Interrupted at the 7th check: the sequential engine has finished one trial (5 checks
    each) and is in its second; the vectorized engine is in its first stack."""
    path = tmp_path / "s.sqlite"
    events = SweepEvents(on_check=CtrlC(at=7))
    with Store.open(path) as store, pytest.raises(KeyboardInterrupt):
        run_sweep(
            store, toy_plan(), toy_workload(), torch.device("cpu"), events, EngineRequest(engine, 1)
        )
    kept = statuses(path)
    assert "running" not in kept
    assert kept == (["done"] if engine == "sequential" else [])


def test_a_horizon_ladder_interrupted_mid_key_keeps_finished_horizons_and_none_running(
    tmp_path: Path,
) -> None:
    """Interrupted as the first horizon of the first key is stored: the key's longer horizon
    was marked running with it."""
    path = tmp_path / "s.sqlite"
    plans = [toy_plan(1.0, "h1"), toy_plan(2.0, "h2")]
    events = SweepEvents(on_trial_end=CtrlC(at=1))
    with Store.open(path) as store, pytest.raises(KeyboardInterrupt):
        run_branched(store, plans, toy_workload(), torch.device("cpu"), events)
    assert statuses(path) == ["done"]


def test_a_trial_rerun_after_an_interruption_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    plan, work, cpu = toy_plan(), toy_workload(), torch.device("cpu")
    with Store.open(path) as store:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(
                store,
                plan,
                work,
                cpu,
                SweepEvents(on_check=CtrlC(at=7)),
                EngineRequest("sequential"),
            )
        trials = run_sweep(store, plan, work, cpu, engine=EngineRequest("sequential"))
    assert len(trials) == len(plan.grid)
    assert statuses(path) == ["done"] * len(plan.grid)


# SIGTERM in the CLI: the same clean-up as Ctrl-C, exit 143


def terminate(*args: object, **kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder, the bundled MNIST sample as $LRKIT_DATA_DIR."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LRKIT_DATA_DIR", str(bundled_sample_dir()))
    return tmp_path


@pytest.mark.parametrize(
    ("verb", "target"),
    [("find", "lrkit.rangetest.find.find_lr"), ("noise", "lrkit.noise.tracking.track_noise_scale")],
)
def test_sigterm_during_a_measurement_exits_143_and_writes_nothing(
    workdir: Path,
    verb: str,
    target: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(target, terminate)
    code, out, err = run([verb, "--json", "r.json"], capsys)
    assert (code, out, err) == (143, "", f"lrkit {verb}: terminated: nothing written\n")
    assert list(workdir.iterdir()) == []


def test_the_cli_leaves_the_signal_handlers_as_it_found_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run(["schedule", "--list"], capsys)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# A closed output pipe: exit 141, silently


def test_a_closed_output_pipe_exits_141_with_nothing_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout a pipe whose reader has gone: a write raises BrokenPipeError (Python ignores
    SIGPIPE); the CLI ends as a Unix tool killed by SIGPIPE would."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        code, _, err = run(["schedule", "--list"], capsys)
        assert (code, err) == (141, "")
        closed.write("x" * 10)
        closed.flush()  # stdout now points at the null device: nothing left to fail at exit


PIPED_VERBS = [
    ["schedule", "--list"],
    ["runs", "--store", "big.sqlite"],
]


@pytest.mark.slow
@pytest.mark.parametrize("args", PIPED_VERBS, ids=lambda a: a[0])
def test_a_verb_piped_into_a_reader_that_stops_exits_141_silently(
    tmp_path: Path, args: list[str]
) -> None:
    """As `lrkit runs | head -1`: the reader takes a line and goes; the writer gets EPIPE
    on its next write, and also at its exit's flush unless handled."""
    store = tmp_path / "big.sqlite"
    with Store.open(store) as opened:
        opened.sweep("x" * 40, toy_plan().definition)
    # The reader leaves before the first line: every write of the verb hits the closed pipe.
    read, write = os.pipe()
    os.close(read)
    process = subprocess.run(
        [sys.executable, "-m", "lrkit", *args],
        cwd=tmp_path,
        stdout=write,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    os.close(write)
    assert process.returncode == 141
    assert process.stderr == b""


# A Ray cluster that cannot be reached: exit 2, one line naming --address


REFUSED = f"127.0.0.1:{free_port()}"
"""Nothing listens there: connecting is refused at once."""
NOT_AN_ADDRESS = (
    "is not HOST:PORT (a Ray head node's address, as 'ray start --head' prints it), "
    "ray://HOST:PORT, auto or local"
)
UNREACHABLE = (
    "reaches no Ray cluster ({}); start one with 'ray start --head', or leave --address out "
    "to run on a local Ray instance"
)
ADVISE = ["advise", "--epochs", "1", "--device", "cpu"]
SWEEP = ["sweep", "--lr", "0.1", "--batch-size", "64", "--store", "s.sqlite", "--device", "cpu"]
LAWS = ["laws", "--model", "widths:mlp", "--widths", "8,16", "--lr", "0.1", "--store", "s.sqlite"]


@pytest.mark.ray
@pytest.mark.parametrize(
    ("args", "address", "message"),
    [
        (SWEEP, REFUSED, UNREACHABLE.format("connection refused")),
        (ADVISE, REFUSED, UNREACHABLE.format("connection refused")),
        (LAWS, REFUSED, UNREACHABLE.format("connection refused")),
        (SWEEP, "nosuchhost.invalid:6379", UNREACHABLE.format("no host named nosuchhost.invalid")),
        (SWEEP, "10.0.0.5", NOT_AN_ADDRESS),
        (SWEEP, ":6379", NOT_AN_ADDRESS),
        (SWEEP, "10.0.0.5:0", NOT_AN_ADDRESS),
        (SWEEP, "10.0.0.5:65536", NOT_AN_ADDRESS),
        (SWEEP, "ray://10.0.0.5:port", NOT_AN_ADDRESS),
    ],
)
def test_an_address_without_a_ray_cluster_exits_2_naming_it(
    workdir: Path,
    args: list[str],
    address: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (workdir / "widths.py").write_text(WIDTHS_MODULE)
    code, out, err = run([*args, "--engine", "ray", "--address", address], capsys)
    assert code == 2
    assert out == ""
    assert err == f"lrkit {args[0]}: error: --address '{address}' {message}\n"
    assert sorted(p.name for p in workdir.iterdir()) == ["widths.py"]  # nothing written


WIDTHS_MODULE = textwrap.dedent(
    """
    from torch import nn

    def mlp(width):
        return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))
    """
)


@contextlib.contextmanager
def serve(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A local server whose every connection ``answer`` handles; yields its address."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                answer(connection)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        server.close()


def hangs_up(connection: socket.socket) -> None:
    connection.recv(64)


def speaks_http1(connection: socket.socket) -> None:
    connection.recv(64)
    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def stays_silent(connection: socket.socket) -> None:
    connection.recv(64)
    time.sleep(0.5)


def speaks_grpc(connection: socket.socket) -> None:
    """As Ray's GCS answers a client's preface: a SETTINGS frame (here with no settings)."""
    connection.recv(64)
    connection.sendall(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (hangs_up, "the server there does not speak gRPC"),
        (speaks_http1, "the server there does not speak gRPC"),
        (stays_silent, "no answer within 0.2 s"),
    ],
)
def test_an_address_where_no_grpc_server_answers_is_refused_at_once(
    answer: Callable[[socket.socket], None], why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray would try such an address 20 times, up to 40 s each."""
    monkeypatch.setattr(ray_engine, "CONNECT_TIMEOUT_S", 0.2)
    with serve(answer) as address, pytest.raises(ValueError) as refused:
        ray_engine.check_address(address)
    assert refused.value.args[0] == f"address '{address}' " + UNREACHABLE.format(why)


def test_an_address_where_a_grpc_server_answers_passes() -> None:
    with serve(speaks_grpc) as address:
        ray_engine.check_address(address)
        ray_engine.check_address(f"ray://{address}")


class FakeRay:
    """``ray.init`` as it behaves at an address: it writes its log lines straight to file
    descriptor 2 (as Ray's core does), may set its own SIGTERM handler, and may fail."""

    def __init__(self, fails: bool, sets_sigterm: bool = False) -> None:
        self.fails, self.sets_sigterm = fails, sets_sigterm
        self.tries: str | None = None

    def init(self, **options: object) -> None:
        self.tries = os.environ.get(ray_engine.RAY_TRIES_VARIABLE)
        os.write(2, b"[W gcs_client.cc:210] Failed to get cluster ID from GCS server\n")
        if self.sets_sigterm:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
        if self.fails:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")


def test_ray_failing_at_an_address_is_one_error_naming_it_with_its_log_lines_held_back(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValueError) as refused:
        ray_engine._start(FakeRay(fails=True), "10.0.0.5:6379")
    why = "Failed to connect to Ray cluster at 10.0.0.5:6379"
    assert refused.value.args[0] == "address '10.0.0.5:6379' " + UNREACHABLE.format(why)
    assert capfd.readouterr().err == ""


def test_ray_starting_writes_out_what_it_logged(capfd: pytest.CaptureFixture[str]) -> None:
    ray_engine._start(FakeRay(fails=False), None)
    assert "Failed to get cluster ID" in capfd.readouterr().err


def test_ray_gets_a_few_tries_at_an_address_unless_the_user_set_them(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ray_engine.RAY_TRIES_VARIABLE, raising=False)
    ray = FakeRay(fails=False)
    ray_engine._start(ray, "10.0.0.5:6379")
    assert ray.tries == str(ray_engine.CONNECT_TRIES)
    assert ray_engine.RAY_TRIES_VARIABLE not in os.environ
    monkeypatch.setenv(ray_engine.RAY_TRIES_VARIABLE, "40")
    ray_engine._start(ray, "10.0.0.5:6379")
    assert ray.tries == "40"


def test_ray_leaves_the_sigterm_handler_as_it_was(capfd: pytest.CaptureFixture[str]) -> None:
    """Ray's own handler exits at once: SIGTERM would skip the CLI's clean-up."""
    before = signal.getsignal(signal.SIGTERM)
    ray_engine._start(FakeRay(fails=False, sets_sigterm=True), None)
    assert signal.getsignal(signal.SIGTERM) == before


# Stopping a run from outside: Ctrl-C, SIGTERM, SIGKILL (real processes)


def lrkit(folder: Path, args: list[str]) -> subprocess.Popen[bytes]:
    """``lrkit ARGS`` in ``folder``, in a session of its own (a terminal's foreground job is
    a process group: Ctrl-C reaches all of it), on the bundled MNIST sample."""
    return subprocess.Popen(
        [sys.executable, "-m", "lrkit", *args],
        cwd=folder,
        env={**os.environ, "LRKIT_DATA_DIR": str(bundled_sample_dir())},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux: from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def count_rows(store: Path, where: str) -> int:
    """Trials that match ``where`` in a store another process may be writing (0 before it
    exists)."""
    if not store.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            (count,) = db.execute(f"SELECT COUNT(*) FROM trials WHERE {where}").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(count)


def wait_for(ready: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    """Until ``ready()``, the process still running."""
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline and not ready():
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[1].decode()


def group_ends(pgid: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


needs_proc = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
STORE = Path("runs.sqlite")
KEPT = r"(\d+) of 16 trials finished and kept in runs\.sqlite; run the same command again to resume"
SWEEP_16 = [
    "sweep",
    "--lr",
    "0.05,0.1,0.2,0.5",
    "--batch-size",
    "128,64,32,16",  # the sequential engine's first trial is its shortest
    "--epochs",
    "4",
    "--store",
    str(STORE),
    "--device",
    "cpu",
]
LADDER = [
    "laws",
    "--model",
    "widths:mlp",
    "--widths",
    "8,16,32",
    "--epochs",
    "1,2",
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--batch-size",
    "32",
    "--store",
    str(STORE),
    "--device",
    "cpu",
]
LAWS_KEPT = "finished runs are kept in runs.sqlite: run again to resume"


def a_trial_done(folder: Path, pid: int) -> bool:
    return count_rows(folder / STORE, "status = 'done'") > 0


def a_trial_running(folder: Path, pid: int) -> bool:
    return count_rows(folder / STORE, "status = 'running'") > 0


def workers_started(folder: Path, pid: int) -> bool:
    return bool(children(pid))


# (args, when to stop it, the signal, to the whole group (a terminal's Ctrl-C) or to the
# main process alone (kill PID, as `timeout` sends it), exit status, the one line)
STOPS = [
    pytest.param(
        [*SWEEP_16, "--engine", "vectorized"],
        a_trial_done,
        signal.SIGTERM,
        False,
        143,
        "lrkit sweep: terminated: " + KEPT,
        id="sweep-vectorized-sigterm",
    ),
    pytest.param(
        [*SWEEP_16, "--engine", "sequential", "--workers", "2"],
        a_trial_done,
        signal.SIGTERM,
        False,
        143,
        "lrkit sweep: terminated: " + KEPT,
        id="sweep-sequential-workers-sigterm",
    ),
    pytest.param(
        [*LADDER, "--engine", "sequential"],
        a_trial_running,
        signal.SIGINT,
        True,
        130,
        re.escape(f"lrkit laws: interrupted: {LAWS_KEPT}"),
        id="laws-branched-ctrl-c",
    ),
    pytest.param(
        [*LADDER, "--engine", "vectorized", "--no-branch"],
        a_trial_running,
        signal.SIGTERM,
        False,
        143,
        re.escape(f"lrkit laws: terminated: {LAWS_KEPT}"),
        id="laws-vectorized-sigterm",
    ),
    pytest.param(  # ray.init replaces the SIGTERM handler: lrkit's is put back
        [*LADDER, "--engine", "ray", "--no-branch"],
        a_trial_running,
        signal.SIGTERM,
        False,
        143,
        re.escape(f"lrkit laws: terminated: {LAWS_KEPT}"),
        id="laws-ray-sigterm",
        marks=pytest.mark.ray,
    ),
    pytest.param(
        ["advise", "--epochs", "3", "--device", "cpu", "--json", "a.json"],
        workers_started,
        signal.SIGTERM,
        False,
        143,
        "lrkit advise: terminated: nothing written",
        id="advise-sigterm",
    ),
]


@pytest.mark.slow
@needs_proc
@pytest.mark.parametrize(("args", "ready", "signum", "to_group", "code", "line"), STOPS)
def test_a_stopped_run_ends_cleanly_and_says_what_it_kept(
    tmp_path: Path,
    args: list[str],
    ready: Callable[[Path, int], bool],
    signum: int,
    to_group: bool,
    code: int,
    line: str,
) -> None:
    """Exit 128 + the signal, one line, no process of the group left, no trial left
    ``running``, and the trials it says it kept are those the store holds."""
    (tmp_path / "widths.py").write_text(WIDTHS_MODULE)
    process = lrkit(tmp_path, args)
    wait_for(lambda: ready(tmp_path, process.pid), process)
    if to_group:
        os.killpg(process.pid, signum)
    else:
        os.kill(process.pid, signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, (process.returncode, err.decode())
    assert out == b""
    said = re.fullmatch(line, err.decode().rstrip("\n"))
    assert said is not None, err.decode()
    assert group_ends(process.pid)
    store = tmp_path / STORE
    assert count_rows(store, "status = 'running'") == 0
    if said.groups():
        assert count_rows(store, "status != 'running'") == int(said.group(1)) >= 1
    assert not (tmp_path / "a.json").exists()


def test_a_stop_raised_inside_exec_still_exits_130(tmp_path: Path) -> None:
    """A Ctrl-C landing in code that ``exec`` runs (dataclasses build methods so, as torch
    imports lazily mid-training) made CPython note it unhandled and kill itself with SIGINT
    at exit (status -2) after lrkit had printed its line: the CLI clears the note."""
    (tmp_path / "stops.py").write_text('def model():\n    exec("raise KeyboardInterrupt")\n')
    process = lrkit(tmp_path, ["find", "--model", "stops:model", "--device", "cpu"])
    out, err = process.communicate(timeout=120)
    assert (process.returncode, out) == (130, b""), err.decode()
    assert err.decode().splitlines()[-1] == "lrkit find: interrupted: nothing written"


@pytest.mark.slow
@needs_proc
def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    """SIGKILL leaves no clean-up to the parent: the kernel ends its workers
    (PR_SET_PDEATHSIG) rather than letting them train on, orphaned, until their next report."""
    process = lrkit(tmp_path, [*SWEEP_16, "--epochs", "40", "--engine", "vectorized"])
    wait_for(lambda: len(children(process.pid)) == 2, process)
    workers = children(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(map(running, workers)):
        time.sleep(0.05)
    alive = [w for w in workers if running(w)]
    for worker in alive:  # leave nothing behind even when the test fails
        os.kill(worker, signal.SIGKILL)
    assert alive == []
    process.communicate(timeout=30)
