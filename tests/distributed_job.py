"""A data-parallel job for tests/test_distributed.py, run by ``torchrun`` on 2 CPU processes
(gloo): the range test and the noise scale on a DDP model; rank 0 writes the results as JSON.

``python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_job.py OUT``

It also supplies the model and data for ``lrkit find --model distributed_job:make_model
--data distributed_job:make_data`` and for the single-process runs the test compares with.
"""

from __future__ import annotations

import gc
import json
import sys
from datetime import timedelta
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from lrkit.data.tensors import TensorData

PER_RANK_BATCH = 8
TRAIN, EVAL = 203, 101  # neither divides evenly: the last batch and the eval set are uneven
FIND = {"program": "1e-3:2e-2:1e-3@2,0.02:1:0.02@1,1:40:1@1", "rounds": 2, "seed": 3}
NOISE = {"lr": 0.2, "epochs": 2.0, "measure_every": 0.5, "seed": 4}


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 3))


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(TRAIN + EVAL, 12, generator=g)
    y = (x[:, :3] + 0.5 * torch.randn(TRAIN + EVAL, 3, generator=g)).argmax(dim=1)
    return x, y


def make_model64() -> nn.Module:
    """``make_model`` in float64, for ``--model``: a range test run into divergence compares
    exactly only in float64 (see test_distributed.LOSS_TOLERANCE)."""
    return make_model().double()


def make_data64() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = make_data()
    return x.double(), y


def splits(dtype: torch.dtype = torch.float32) -> tuple[TensorData, TensorData]:
    x, y = make_data()
    x = x.to(dtype)
    return TensorData(x[:TRAIN], y[:TRAIN]), TensorData(x[TRAIN:], y[TRAIN:])


def seeded_model(seed: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return make_model().to(dtype)


FIND_VARIANTS = ("find", "find_accumulate", "find_dataset")


def find_inputs(name: str) -> tuple[TensorData | TensorDataset, TensorData | None, int]:
    """(training data, evaluation data, accumulation steps) of a range-test variant: tensors
    with an evaluation set, the same with 2 micro-batches a step, a Dataset (a DataLoader's
    batches) without one."""
    train, val = splits(torch.float64)
    if name == "find_dataset":
        return TensorDataset(train.x, train.y), None, 1
    return train, val, 2 if name == "find_accumulate" else 1


def main(out: Path) -> None:
    import torch.distributed as dist

    from lrkit.noise.tracking import NoiseSettings, track_noise_scale
    from lrkit.rangetest.find import find_lr
    from lrkit.rangetest.settings import RangeTestSettings
    from lrkit.training import distributed

    # A bug that sent the ranks different ways would hang a collective: fail after a minute.
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    try:
        # The range test in float64: it runs on into divergence, where float32's rounding
        # (one loss over 16 examples against two over 8) would grow past any tight tolerance.
        found = {}
        for name in FIND_VARIANTS:
            data, val, accumulate = find_inputs(name)
            net = distributed.wrap(
                seeded_model(int(FIND["seed"]), torch.float64), torch.device("cpu")
            )
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
            before = [p.detach().clone() for p in net.parameters()]
            rng = torch.get_rng_state()
            settings = RangeTestSettings(
                batch_size=PER_RANK_BATCH,
                program=str(FIND["program"]),
                rounds=int(FIND["rounds"]),
                accumulation_steps=accumulate,
                seed=int(FIND["seed"]),
            )
            result = find_lr(net, data, settings, optimizer=optimizer, eval_data=val)
            restored = all(
                torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True)
            ) and torch.equal(rng, torch.get_rng_state())
            document = result.to_json()
            document["restored_on_each_rank"] = [
                bool(v[0]) for v in distributed.gather_floats([float(restored)])
            ]
            found[name] = document

        train, val = splits()
        net = distributed.wrap(seeded_model(int(NOISE["seed"])), torch.device("cpu"))
        settings = NoiseSettings(
            lr=float(NOISE["lr"]),
            batch_size=PER_RANK_BATCH,
            epochs=float(NOISE["epochs"]),
            measure_every=float(NOISE["measure_every"]),
            seed=int(NOISE["seed"]),
        )
        optimizer = torch.optim.SGD(net.parameters(), lr=settings.lr)
        noise = track_noise_scale(net, optimizer, nn.CrossEntropyLoss(), train, val, settings)
        found["noise"] = noise.to_json()
        if distributed.is_main():
            out.write_text(json.dumps(found, indent=1), encoding="utf-8")
        # DDP models must not outlive the group (see distributed.torchrun_group).
        del net, optimizer
        gc.collect()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
