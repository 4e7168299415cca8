"""What to train: a model, its data and its loss, from built-in names or import paths.

The CLI verbs (find, and later sweep and noise) share this: ``--model mnist-mlp`` or
``--model pkg.module:factory``, ``--data pkg.module:factory`` or an MNIST folder
(``--data-dir``, ``$LRKIT_DATA_DIR``, or the sample shipped in the package), ``--loss``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lrkit import validation as check
from lrkit.data.mnist import load_mnist, resolve_data_dir
from lrkit.data.named import named_data
from lrkit.data.tensors import TensorData, tensor_data_from
from lrkit.errors import LrkitValueError, quoted
from lrkit.imports import is_import_path, load_object
from lrkit.models import MODELS, build_model
from lrkit.training.evaluate import LossFn
from lrkit.training.fit_check import check_finite
from lrkit.training.outputs import CrossEntropy, default_loss

TrainData = TensorData | Dataset | DataLoader  # type: ignore[type-arg]


@dataclass(frozen=True)
class Workload:
    """A model factory (seed -> fresh model), data splits and a loss."""

    model_name: str
    make_model: Callable[[int], nn.Module]
    train: TrainData
    val: TensorData | None
    test: TensorData | None
    loss_fn: LossFn
    data_name: str


def model_factory(spec: str) -> Callable[[int], nn.Module]:
    """``seed -> nn.Module`` for a built-in name or ``module:factory`` (a class or a function
    called with no arguments). The global RNG is seeded only inside the call."""
    if not is_import_path(spec):
        if spec not in MODELS:
            build_model(spec, 0)  # raises the error that lists the names
        return lambda seed: build_model(spec, seed)
    factory = load_object(spec, "--model")
    if not callable(factory):
        raise LrkitValueError(
            f"--model {quoted(spec)} is not callable: give a class or a function returning "
            "an nn.Module"
        )

    def make(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return built_model(factory, spec)

    return make


MESSAGE_LIMIT = 300
"""Characters of a user factory's exception kept in a one-line error."""
TORCH_TRACE = re.compile(r"(Exception raised from |frame #\d+: |<omitting python frames>)")
"""The lines of the C++ stack PyTorch appends to its errors' messages."""


def exception_line(exc: BaseException) -> str:
    """``Type: message`` of a user factory's exception as one short line: PyTorch's C++ stack
    (``Exception raised from ...``, ``frame #0: ...``) dropped, the rest joined, at most
    ``MESSAGE_LIMIT`` characters."""
    lines = (line.strip() for line in str(exc).splitlines())
    text = " ".join(line for line in lines if line and not TORCH_TRACE.match(line))
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3].rstrip() + "..."


def built_model(
    factory: Callable[..., object], spec: str, *args: object, where: str = ""
) -> nn.Module:
    """``factory(*args)``; its failure, or a result that is not an ``nn.Module``, as a
    one-line error naming ``--model spec`` (and ``where``, e.g. " at width 64")."""
    try:
        model = factory(*args)
    except Exception as exc:
        raise LrkitValueError(
            f"--model {quoted(spec)} failed{where}: {exception_line(exc)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise LrkitValueError(
            f"--model {quoted(spec)} returned {type(model).__name__}{where}, not an nn.Module"
        )
    return model


def loss_from(spec: str | None) -> LossFn:
    """Cross-entropy by default (``training.outputs.CrossEntropy``: per token for a
    (batch, length, vocabulary) output); else ``module:attribute``, a loss class
    (instantiated with no arguments) or a function ``loss(output, target)``."""
    if spec is None:
        return CrossEntropy()
    target = load_object(spec, "--loss")
    if isinstance(target, type):
        try:
            target = target()
        except Exception as exc:
            raise LrkitValueError(f"--loss {quoted(spec)} failed: {exception_line(exc)}") from None
    if not callable(target):
        raise LrkitValueError(f"--loss {quoted(spec)} is not callable")
    return target


def _as_train_data(value: object, spec: str, part: str) -> TrainData:
    named = named_data(value)
    if named is not None:
        return named
    if isinstance(value, (Dataset, DataLoader)):
        return value
    tensors = tensor_data_from(value)
    if tensors is None:
        raise LrkitValueError(
            f"--data {quoted(spec)}: {part} must be TensorData, an (inputs, targets) pair of "
            f"tensors, a Dataset or a DataLoader, or dicts with 'labels' (a datasets.Dataset, "
            f"a list of dicts, a DataLoader of dicts), got {type(value).__name__}"
        )
    return tensors


def _as_tensors(value: object, spec: str, part: str) -> TensorData:
    data = _as_train_data(value, spec, part)
    if not isinstance(data, TensorData):
        raise LrkitValueError(
            f"--data {quoted(spec)}: {part} must be tensors (TensorData or an (x, y) pair)"
        )
    return data


def load_workload(
    model: str,
    data: str | None,
    data_dir: Path | None,
    loss: str | None,
    val_fraction: float,
    notify: Callable[[str], None],
    min_val: int = 1,
) -> Workload:
    """Resolve the CLI's model, data and loss options into a :class:`Workload`.

    ``--data module:factory`` may return training data (tensors, Dataset or DataLoader, or
    dicts with ``labels`` as Hugging Face data comes: ``data.features.named_data``) or a
    mapping with ``train`` and optionally ``val`` (or ``validation``) and ``test``. Without
    ``--loss``, dicts train on the model's own loss (``training.outputs.default_loss``).
    Tensor training data without a
    ``val`` part is split: the last ``val_fraction`` becomes validation, which must hold at
    least ``min_val`` examples (a verb that judges runs on it says how many it needs). Tensor
    parts are checked for values that are not finite (``fit_check.check_finite``).
    """
    make_model = model_factory(model)
    loss_fn = loss_from(loss)
    if data is not None:
        if data_dir is not None:
            raise LrkitValueError("give --data or --data-dir, not both")
        produced = load_object(data, "--data")
        if callable(produced) and not isinstance(produced, (Dataset, DataLoader)):
            try:
                produced = produced()
            except Exception as exc:
                raise LrkitValueError(
                    f"--data {quoted(data)} failed: {exception_line(exc)}"
                ) from None
        parts = produced if isinstance(produced, Mapping) else {"train": produced}
        if "train" not in parts:
            raise LrkitValueError(
                f"--data {quoted(data)}: the mapping it returned has no 'train' entry"
            )
        train = _as_train_data(parts["train"], data, "train")
        if parts.get("val") is None and parts.get("validation") is not None:
            parts = {**parts, "val": parts["validation"]}  # a datasets.DatasetDict's name
        val = _as_tensors(parts["val"], data, "val") if parts.get("val") is not None else None
        if loss is None:
            loss_fn = default_loss(getattr(train, "x", None))
        test = _as_tensors(parts["test"], data, "test") if parts.get("test") is not None else None
        named = {"training": train, "validation": val, "test": test}
        check_finite(
            {part: d for part, d in named.items() if isinstance(d, TensorData)},
            f"--data {quoted(data)}",
        )
        if val is not None and len(val) < min_val:
            raise LrkitValueError(
                f"--data {quoted(data)}: its val part holds {len(val)} examples; "
                f"at least {min_val} are needed to judge runs on"
            )
        if val is None and isinstance(train, TensorData):
            train, val = split_validation(train, val_fraction, min_val)
        return Workload(model, make_model, train, val, test, loss_fn, data)
    folder, bundled = resolve_data_dir(data_dir)
    mnist = load_mnist(folder)
    if bundled:
        notify(
            f"using the MNIST sample shipped with lrkit ({len(mnist.train)} training images); "
            "give --data-dir or set LRKIT_DATA_DIR for the full set"
        )
    train, val = split_validation(mnist.train, val_fraction, min_val)
    name = "MNIST sample" if bundled else f"MNIST ({folder.resolve()})"
    return Workload(model, make_model, train, val, mnist.test, loss_fn, name)


def split_validation(
    data: TensorData, val_fraction: float, min_val: int
) -> tuple[TensorData, TensorData]:
    """``data.split(val_fraction)``, refused where the validation part would hold fewer than
    ``min_val`` examples (an accuracy on a handful of examples tells runs apart by chance)."""
    train, val = data.split(val_fraction)
    if len(val) < min_val:
        least = check.round_up(min_val / len(data))
        examples = f"{len(val)} validation example{'s' if len(val) > 1 else ''}"
        message = (
            f"val_fraction {val_fraction:g} leaves {examples} of {len(data)}; at least "
            f"{min_val} are needed to judge runs on: give at least {least:g}"
        )
        raise LrkitValueError(
            message, cli_message="--val-fraction" + message[len("val_fraction") :]
        )
    return train, val


@dataclass(frozen=True)
class WorkloadSource:
    """A workload as the command line names it, loaded by :meth:`load` (see
    :func:`load_workload`): ``--model``, ``--data``, ``--data-dir``, ``--loss`` and the share
    of tensor training data held out for validation."""

    model: str
    data: str | None
    data_dir: Path | None
    loss: str | None
    val_fraction: float

    def load(self, notify: Callable[[str], None], min_val: int = 1) -> Workload:
        return load_workload(
            self.model, self.data, self.data_dir, self.loss, self.val_fraction, notify, min_val
        )
