"""IDX reading, MNIST loading, the validation split and in-memory batches."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lrkit.data.idx import read_idx
from lrkit.data.mnist import bundled_sample_dir, load_mnist, resolve_data_dir
from lrkit.data.tensors import BatchStream, TensorData
from lrkit.errors import LrkitValueError


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "i" * array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip_reads_the_count_from_the_header(tmp_path: Path, compress: bool) -> None:
    array = np.arange(5 * 3 * 2, dtype=np.uint8).reshape(5, 3, 2)
    raw = idx_bytes(array)
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    assert np.array_equal(read_idx(path), array)


def test_idx_with_a_wrong_count_is_rejected(tmp_path: Path) -> None:
    raw = bytearray(idx_bytes(np.zeros((4, 2), dtype=np.uint8)))
    raw[4:8] = struct.pack(">i", 5)  # header claims 5 rows, file holds 4
    path = tmp_path / "bad.idx"
    path.write_bytes(bytes(raw))
    with pytest.raises(LrkitValueError, match="header says shape"):
        read_idx(path)


def test_non_idx_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(LrkitValueError, match="not an IDX file"):
        read_idx(path)


def test_bundled_sample_loads() -> None:
    mnist = load_mnist(bundled_sample_dir())
    assert mnist.train.x.shape == (6000, 1, 28, 28)
    assert mnist.test.x.shape == (1000, 1, 28, 28)
    assert mnist.train.x.dtype == torch.float32
    assert float(mnist.train.x.min()) >= 0.0 and float(mnist.train.x.max()) == 1.0
    assert mnist.train.y[:5].tolist() == [5, 0, 4, 1, 9]  # the first labels of MNIST


def test_full_mnist_count_comes_from_the_header(mnist_dir: Path) -> None:
    mnist = load_mnist(mnist_dir)
    assert len(mnist.train) == 24_000
    assert len(mnist.test) == 10_000
    counts = torch.bincount(mnist.train.y, minlength=10).tolist()
    assert counts == [2381, 2732, 2347, 2487, 2347, 2144, 2370, 2489, 2292, 2411]


def test_folder_without_idx_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LrkitValueError, match="no MNIST IDX files"):
        load_mnist(tmp_path)


def test_data_dir_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LRKIT_DATA_DIR", raising=False)
    assert resolve_data_dir(None) == (bundled_sample_dir(), True)
    monkeypatch.setenv("LRKIT_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == (tmp_path, False)
    assert resolve_data_dir(tmp_path / "x") == (tmp_path / "x", False)


def test_validation_split_keeps_the_last_twelfth() -> None:
    data = TensorData(torch.arange(120).float().unsqueeze(1), torch.arange(120))
    train, val = data.split(1 / 12)
    assert len(train) == 110 and len(val) == 10
    assert val.y.tolist() == list(range(110, 120))


def test_each_epoch_is_a_fresh_permutation_with_the_partial_batch_used() -> None:
    data = TensorData(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    stream = BatchStream(data, batch_size=4, seed=3)
    batches = iter(stream)
    epochs = []
    for _ in range(3):
        seen = [next(batches)[1] for _ in range(3)]
        assert [len(b) for b in seen] == [4, 4, 2]
        order = torch.cat(seen)
        assert sorted(order.tolist()) == list(range(10))
        epochs.append(order.tolist())
    assert epochs[0] != epochs[1] != epochs[2]
    again = iter(BatchStream(data, batch_size=4, seed=3))
    assert torch.cat([next(again)[1] for _ in range(3)]).tolist() == epochs[0]


def test_batch_larger_than_the_data_is_an_error() -> None:
    data = TensorData(torch.zeros(5, 1), torch.zeros(5, dtype=torch.int64))
    with pytest.raises(
        LrkitValueError, match="batch_size must be at most the number of training examples"
    ):
        BatchStream(data, batch_size=6)
