"""The CUDA paths: training on the GPU, mixed precision, and the restore of CUDA RNG state.

These run only where torch sees a GPU (not in CI, which has none); they are run by hand on a
lent GPU machine, as BENCHMARKS.md and the issue notes record.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrkit.data.mnist import bundled_sample_dir, load_mnist
from lrkit.models import build_model
from lrkit.rangetest.find import find_lr
from lrkit.rangetest.programs import exponential_range
from lrkit.rangetest.settings import RangeTestSettings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cuda_setup() -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    train = load_mnist(bundled_sample_dir()).train
    model = nn.Sequential(build_model("mnist-cnn", 0), nn.Dropout(0.1)).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return model, optimizer, train.x.cuda(), train.y.cuda()


def test_find_on_cuda_restores_weights_optimizer_and_cuda_rng_bitwise() -> None:
    model, optimizer, x, y = cuda_setup()
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x[:64]), y[:64]).backward()
    optimizer.step()  # momentum buffers exist
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    momentum = [optimizer.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    cuda_rng = torch.cuda.get_rng_state()
    settings = RangeTestSettings(program=exponential_range(1e-4, 10, 80), rounds=2)
    result = find_lr(model, (x, y), settings, optimizer=optimizer)
    assert result.device.startswith("cuda")
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(
        torch.equal(m, optimizer.state[p]["momentum_buffer"])
        for m, p in zip(momentum, model.parameters(), strict=True)
    )
    assert torch.equal(cuda_rng, torch.cuda.get_rng_state())


def test_mixed_precision_runs_with_a_gradient_scaler() -> None:
    model, optimizer, x, y = cuda_setup()
    program = exponential_range(1e-4, 1.0, 60)
    amp = find_lr(model, (x, y), RangeTestSettings(program=program, amp=True), optimizer=optimizer)
    full = find_lr(model, (x, y), RangeTestSettings(program=program), optimizer=optimizer)
    amp_losses = [p.loss for p in amp.rounds[0].record.points]
    full_losses = [p.loss for p in full.rounds[0].record.points]
    assert all(math.isfinite(v) for v in amp_losses)
    # float16 forward passes: the same trajectory to about half precision at the start
    assert amp_losses[:10] == pytest.approx(full_losses[:10], rel=2e-2)


def test_vectorized_engine_on_cuda_follows_the_plain_loop() -> None:
    from lrkit.training.loop import TrialPlan, train_trial
    from lrkit.training.vectorized.loop import StackedRun, StackedTrial

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    train, val = load_mnist(bundled_sample_dir()).train.split(1 / 12)
    train, val = train.head(3200).to(torch.device("cuda")), val.to(torch.device("cuda"))
    for name in ("mnist-mlp", "mnist-cnn"):
        trials = [
            StackedTrial(TrialPlan(lr, 16, 1.0, 0.5, seed), 0.5, 1e-4)
            for lr, seed in ((0.02, 0), (0.05, 0), (0.05, 1))
        ]
        run = StackedRun(
            [build_model(name, t.plan.seed).cuda() for t in trials],
            trials,
            nn.CrossEntropyLoss(),
            train,
            val,
            val,
        )
        outcomes = run.run()
        for index, trial in enumerate(trials):
            model = build_model(name, trial.plan.seed).cuda()
            optimizer = torch.optim.SGD(
                model.parameters(), lr=trial.plan.lr, momentum=0.5, weight_decay=1e-4
            )
            plain = train_trial(
                model, optimizer, nn.CrossEntropyLoss(), train, val, val, trial.plan
            )
            assert outcomes[index].points[-1].val_loss == pytest.approx(
                plain.points[-1].val_loss, rel=1e-4
            )
            stacked = run.network.trial_state_dict(index)
            for key, value in model.state_dict().items():
                scale = float(value.abs().max())
                assert float((stacked[key] - value).abs().max()) <= 1e-4 * scale


def test_find_repeats_on_cuda_use_the_vectorized_engine() -> None:
    train = load_mnist(bundled_sample_dir()).train
    model = build_model("mnist-mlp", 0).cuda()
    result = find_lr(
        model, (train.x.cuda(), train.y.cuda()), RangeTestSettings(repeats=3, rounds=2)
    )
    assert result.engine == "vectorized" and result.device.startswith("cuda")
    assert len(result.suggested_lr_by_repeat) == 3
    assert result.suggested_lr is not None


def test_noise_scale_on_cuda_equals_the_cpu_measurement() -> None:
    from lrkit.noise.estimators import per_example_estimate, two_batch_estimate

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 12, generator=g)
    y = (x[:, :3].sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 2))
    sample = (x[:1024], y[:1024])
    groups = [
        [(x[i : i + 16], y[i : i + 16]) for i in range(j, j + 128, 16)] for j in (0, 128, 256)
    ]
    loss = nn.CrossEntropyLoss()
    cpu = per_example_estimate(model, loss, sample, (x, y))
    cpu_two = two_batch_estimate(model, loss, groups)
    model.cuda()

    def on_gpu(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return batch[0].cuda(), batch[1].cuda()

    gpu = per_example_estimate(model, loss, on_gpu(sample), on_gpu((x, y)))
    gpu_two = two_batch_estimate(model, loss, [[on_gpu(b) for b in group] for group in groups])
    assert gpu.b_simple == pytest.approx(cpu.b_simple, rel=1e-4)
    assert gpu_two.b_simple == pytest.approx(cpu_two.b_simple, rel=1e-4)


def test_the_ceiling_probe_on_cuda_finds_a_real_out_of_memory_and_restores_bitwise() -> None:
    from lrkit.batchsize.ceiling import probe_ceiling
    from lrkit.data.tensors import TensorData

    # A wide MLP on 1 MiB inputs: each example keeps ~2 MiB of activations, so a cap of 4 GiB
    # of the GPU's memory (held by a tensor allocated here) makes a few thousand fit.
    free, _ = torch.cuda.mem_get_info()
    hold = torch.empty(max(free - 4 * 2**30, 0), dtype=torch.uint8, device="cuda")
    model = nn.Sequential(nn.Linear(2**18, 512), nn.ReLU(), nn.Linear(512, 10)).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(64, 2**18, device="cuda")
    train = TensorData(x, torch.randint(0, 10, (64,), device="cuda"))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    cuda_rng = torch.cuda.get_rng_state()
    found = probe_ceiling(model, optimizer, nn.CrossEntropyLoss(), train, limit=2**16)
    del hold
    assert 64 <= found.batch_size < 2**16
    assert any(not ok for _, ok in found.tried)  # it met a real out-of-memory
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert optimizer.state_dict()["state"] == {}  # no Adam state left behind
    assert torch.equal(cuda_rng, torch.cuda.get_rng_state())


def test_the_time_choice_on_cuda_measures_step_times_on_the_gpu() -> None:
    from lrkit.batchsize.model import choose, predict
    from lrkit.batchsize.throughput import measure_step_times
    from lrkit.data.tensors import TensorData
    from lrkit.training.optimizers import make_optimizer

    train = load_mnist(bundled_sample_dir()).train
    data = TensorData(train.x.cuda(), train.y.cuda())
    model = build_model("mnist-cnn", 0).cuda()
    sizes = [16, 64, 256, 1024]
    times = measure_step_times(
        model, nn.CrossEntropyLoss(), data, sizes, lambda net: make_optimizer("momentum", net, 0.01)
    )
    per_example = [t.seconds / t.batch_size for t in times]
    # A GPU step costs about the same at small batches: per example it falls with the batch.
    assert per_example[0] > 4 * per_example[-1]
    predictions = predict({t.batch_size: t.seconds for t in times}, 200.0)
    assert choose(predictions, "time") >= 64
