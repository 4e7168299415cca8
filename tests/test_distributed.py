"""The range test and the noise scale under torch.distributed: 2 CPU processes (gloo) started
by torchrun (``python -m torch.distributed.run``) on a DistributedDataParallel model, against
one process fed the same global batches.

Each torchrun start costs a few seconds (two interpreters importing torch), so the library
job runs the range test and the noise scale in one start; the CLI has one start per verb.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import distributed_job as job
from cli_run import run
from lrkit.noise.estimators import (
    NoiseEstimate,
    NoiseSmoother,
    ratio_with_jackknife,
    two_batch_estimate,
)
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.settings import RangeTestSettings
from lrkit.training.evaluate import evaluate

TESTS = Path(__file__).resolve().parent


def _distributed_problem() -> str | None:
    import torch.distributed as dist

    if not dist.is_available():
        return "this torch has no torch.distributed"
    if not dist.is_gloo_available():
        return "this torch has no gloo backend"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.slow,
    pytest.mark.skipif(_distributed_problem() is not None, reason=str(_distributed_problem())),
]

LOSS_TOLERANCE = 1e-9
"""Relative, in float64: the ranks' losses over 8 examples averaged against one loss over 16,
and DDP's mean of two half-batch gradients against one gradient, differ by rounding (~1e-16),
which ~100 steps into divergence grow by orders of magnitude but nowhere near 1e-9. (In
float32 the same rounding, ~1e-7, grows past 1e-4 in the last, diverging steps.)"""


def torchrun(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node 2 ARGS`` on the CPU."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on the CPU even where a GPU is
    env.pop("LRKIT_DATA_DIR", None)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        *args,
    ]
    # Its own session, so that a hung job's workers (torchrun's children) die with it.
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"torchrun ran past {timeout} s: {stdout[-2000:]}{stderr[-4000:]}")
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    # A known teardown race (DDP's reducer against gloo's destroyed group) can abort a rank
    # at exit, after all its work, with this C++ message and no Python traceback; the
    # callers then check every output. Any other failure fails the test.
    teardown = "terminate called without an active exception" in stderr
    if not (teardown and "Traceback" not in stderr):
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


@pytest.fixture(scope="module")
def job_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("distributed")
    torchrun([str(TESTS / "distributed_job.py"), str(folder / "out.json")], folder)
    result: dict[str, Any] = json.loads((folder / "out.json").read_text())
    return result


def assert_same_rounds(distributed: dict[str, Any], single: dict[str, Any]) -> None:
    """The same lrs, stops and suggestions; losses to float tolerance."""
    assert len(distributed["rounds"]) == len(single["rounds"])
    for got, want in zip(distributed["rounds"], single["rounds"], strict=True):
        assert got["program"] == want["program"]
        assert [p["lr"] for p in got["points"]] == [p["lr"] for p in want["points"]]
        assert got["stop_reason"] == want["stop_reason"]
        assert got["diverged_at"] == want["diverged_at"]
        for key in ("loss", "smoothed_loss"):
            assert [p[key] for p in got["points"]] == pytest.approx(
                [p[key] for p in want["points"]], rel=LOSS_TOLERANCE
            )
        assert [h["complete"] for h in got["holds"]] == [h["complete"] for h in want["holds"]]
        assert [h["eval_loss"] is None for h in got["holds"]] == [
            h["eval_loss"] is None for h in want["holds"]
        ]
        assert [h["eval_loss"] for h in got["holds"] if h["eval_loss"] is not None] == (
            pytest.approx(
                [h["eval_loss"] for h in want["holds"] if h["eval_loss"] is not None],
                rel=LOSS_TOLERANCE,
            )
        )
        assert got["curve_lrs"] == want["curve_lrs"]
        assert got["turning_point"] == want["turning_point"]
    assert distributed["suggestions"] == single["suggestions"]


@pytest.mark.parametrize("name", job.FIND_VARIANTS)
def test_distributed_range_test_equals_one_process_on_the_global_batches(
    job_result: dict[str, Any], name: str
) -> None:
    got = job_result[name]
    data, val, accumulate = job.find_inputs(name)
    net = job.seeded_model(int(job.FIND["seed"]), torch.float64)
    settings = RangeTestSettings(
        batch_size=2 * job.PER_RANK_BATCH,
        program=str(job.FIND["program"]),
        rounds=int(job.FIND["rounds"]),
        accumulation_steps=accumulate,
        seed=int(job.FIND["seed"]),
        engine="sequential",
    )
    single = find_lr(
        net,
        data,
        settings,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
        eval_data=val,
    ).to_json()
    # the test diverged and stopped early (all ranks together, or the job would have hung)
    assert single["rounds"][0]["diverged_at"] is not None
    assert_same_rounds(got, single)
    assert got["world_size"] == 2 and got["batch_size"] == single["batch_size"] == 16
    assert got["engine"] == "sequential"
    assert got["engine_reason"] == "a distributed (DDP) model runs on the plain loop"
    assert got["restored_on_each_rank"] == [True, True]


def reference_noise(points: list[dict[str, Any]]) -> list[dict[str, float]]:
    """One process training on the global batches of 16 in the DDP job's order, measuring at
    every step (before it) the two-batch estimate of the two halves, rank 0's rows and rank
    1's: the pairs the comm hook records. Steps whose batch does not halve are left out, as
    the job leaves them out; the steps since the previous check are pooled at each check."""
    train, val = job.splits()
    model = job.seeded_model(int(job.NOISE["seed"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=float(job.NOISE["lr"]))
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(int(job.NOISE["seed"]))
    batch = 2 * job.PER_RANK_BATCH
    checks = [p["iteration"] for p in points]
    traces: list[float] = []
    norms: list[float] = []
    losses: list[float] = []
    smoother = NoiseSmoother()
    measured: list[dict[str, float]] = []
    iteration = 0
    while iteration < checks[-1]:
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), batch):
            index = order[start : start + batch]
            x, y = train.x[index], train.y[index]
            if len(index) % 2 == 0:
                half = len(index) // 2
                pair = [(x[:half], y[:half]), (x[half:], y[half:])]
                found = two_batch_estimate(model, loss_fn, [pair])
                traces.append(found.trace_sigma)
                norms.append(found.grad_norm_sq)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.item())
            iteration += 1
            if iteration in checks:
                b_simple, stderr = ratio_with_jackknife(traces, norms)
                trace, norm = math.fsum(traces) / len(traces), math.fsum(norms) / len(norms)
                smoothed = smoother.add(NoiseEstimate(b_simple, stderr, norm, trace, 1, "-"))
                measured.append(
                    {
                        "b_simple": b_simple,
                        "trace": trace,
                        "norm": norm,
                        "smoothed": smoothed,
                        "train_loss": math.fsum(losses) / len(losses),
                        "val_loss": evaluate(model, loss_fn, val)[0],
                    }
                )
                traces, norms, losses = [], [], []
            if iteration == checks[-1]:
                break
    return measured


def test_distributed_noise_scale_equals_one_process_two_batch_estimate(
    job_result: dict[str, Any],
) -> None:
    run_json = job_result["noise"]
    assert run_json["estimator"] == "two-batch-ddp" and run_json["world_size"] == 2
    assert run_json["batch_size"] == 16
    points = run_json["points"]
    assert [round(p["epoch"], 6) for p in points] == [
        round(x, 6) for x in (7 / 13, 1.0, 1 + 7 / 13, 2.0)
    ]
    want = reference_noise(points)
    # The same batches and (to float32 rounding) the same weights: each step's squared norms
    # agree to ~1e-6; tr(Sigma) is a difference of two of them (a few times larger relative
    # error), B_simple a ratio; 1e-4 leaves a wide margin without hiding a wrong formula
    # (a factor, a batch size off by one or a missed bucket would be >1% off).
    for got, expected in zip(points, want, strict=True):
        assert got["trace_sigma"] == pytest.approx(expected["trace"], rel=1e-4)
        assert got["grad_norm_sq"] == pytest.approx(expected["norm"], rel=1e-4)
        assert got["b_simple"] == pytest.approx(expected["b_simple"], rel=1e-4)
        assert got["b_simple_smoothed"] == pytest.approx(expected["smoothed"], rel=1e-4)
        # the training itself: the same losses (float32, as in the range test's note)
        assert got["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-5)
        assert got["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-5)


CLI_FIND = [
    "find",
    "--model",
    "distributed_job:make_model64",
    "--data",
    "distributed_job:make_data64",
    "--segments",
    str(job.FIND["program"]),
    "--rounds",
    "2",
    "--eval-size",
    "40",
    "--seed",
    "5",
    "--engine",
    "sequential",
]


def test_cli_find_under_torchrun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`torchrun -m lrkit find`: rank 0 prints the summary and writes the files, once; the
    result is one process's at batch size 2 x 8."""
    done = torchrun(
        [
            "-m",
            "lrkit",
            *CLI_FIND,
            "--batch-size",
            "8",
            "--json",
            "ddp.json",
            "--plot",
            "ddp.png",
        ],
        tmp_path,
    )
    assert done.stdout.count("suggested learning rate:") == 1
    assert "batch size 16 (8 per rank x 2 ranks)" in done.stdout
    assert done.stderr.count("wrote ddp.png") == 1
    assert (tmp_path / "ddp.png").read_bytes()[:4] == b"\x89PNG"
    got = json.loads((tmp_path / "ddp.json").read_text())
    assert got["world_size"] == 2 and got["batch_size"] == 16

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(TESTS))
    code, _, err = run([*CLI_FIND, "--batch-size", "16", "--no-plot", "--json", "one.json"], capsys)
    assert code == 0, err
    single = json.loads((tmp_path / "one.json").read_text())
    assert single["world_size"] == 1 and single["batch_size"] == 16
    assert_same_rounds(got, single)


def test_cli_noise_under_torchrun(tmp_path: Path) -> None:
    done = torchrun(
        [
            "-m",
            "lrkit",
            "noise",
            "--model",
            "distributed_job:make_model",
            "--data",
            "distributed_job:make_data",
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "--measure-every",
            "0.5",
            "--lr",
            "0.2",
            "--json",
            "noise.json",
            "--plot",
            "noise.png",
        ],
        tmp_path,
    )
    assert done.stdout.count("critical batch size") == 1
    assert "two-batch-ddp estimator" in done.stdout
    assert done.stderr.count("wrote noise.png") == 1
    got = json.loads((tmp_path / "noise.json").read_text())
    assert got["estimator"] == "two-batch-ddp" and got["world_size"] == 2
    assert got["batch_size"] == 16
    assert [p["epoch"] for p in got["points"]] == pytest.approx([0.5, 1.0], abs=0.05)
    assert all(p["trace_sigma"] > 0 for p in got["points"])
    assert got["critical_batch_size"] is not None and got["critical_batch_size"] > 0
