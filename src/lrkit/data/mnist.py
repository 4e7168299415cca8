"""MNIST from IDX files: a folder given by the user, ``LRKIT_DATA_DIR``, or the sample that
ships inside the package (6,000 training and 1,000 test images of the official sets).

MNIST: Y. LeCun, C. Cortes & C. J. C. Burges, licence CC BY-SA 3.0. Images become float32
in [0, 1] of shape (N, 1, 28, 28); labels int64.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from lrkit.data.idx import read_idx
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError

DATA_DIR_VARIABLE = "LRKIT_DATA_DIR"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Mnist:
    """The training and test sets, and where they came from."""

    train: TensorData
    test: TensorData
    source: str


def bundled_sample_dir() -> Path:
    """The folder of the MNIST sample shipped inside the package."""
    return Path(str(resources.files("lrkit.data") / "mnist_sample"))


def resolve_data_dir(data_dir: Path | None) -> tuple[Path, bool]:
    """The MNIST folder to use and whether it is the bundled sample.

    Order: ``data_dir`` if given, else ``$LRKIT_DATA_DIR`` if set, else the bundled sample.
    """
    if data_dir is not None:
        return data_dir, False
    from_env = os.environ.get(DATA_DIR_VARIABLE)
    if from_env:
        return Path(from_env), False
    return bundled_sample_dir(), True


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise LrkitValueError(
        f"no MNIST IDX files in {folder}: expected {stem}.gz or {stem} "
        "(the files of http://yann.lecun.com/exdb/mnist/)",
        cli_message=f"--data-dir {folder} has no MNIST IDX files: expected {stem}.gz or {stem}",
    )


def load_mnist(folder: Path) -> Mnist:
    """Read the four MNIST IDX files of ``folder`` (gzip or raw)."""
    if not folder.is_dir():
        raise LrkitValueError(
            f"MNIST folder {folder} does not exist",
            cli_message=f"--data-dir {folder} does not exist",
        )
    paths = {key: _find(folder, stem) for key, stem in FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise LrkitValueError(
                f"{folder}: {part} images {images.shape} and labels {labels.shape} do not match"
            )
    return Mnist(
        train=_tensors(arrays["train_images"], arrays["train_labels"]),
        test=_tensors(arrays["test_images"], arrays["test_labels"]),
        source=str(folder),
    )


def _tensors(images: npt.NDArray[Any], labels: npt.NDArray[Any]) -> TensorData:
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return TensorData(x, torch.from_numpy(labels.astype(np.int64)))
