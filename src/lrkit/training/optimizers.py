"""Optimizers by name or by import path, shared by every verb that trains (torch loads on use,
so the CLI can check a name before importing it).

``--optimizer`` takes one of ``OPTIMIZERS`` (sgd: plain, the textbook's; momentum: SGD with
``--momentum``; adam; adamw) or ``module:Class``, any :class:`torch.optim.Optimizer` subclass
(``torch.optim:RAdam``, ``prodigyopt:Prodigy``). ``--optimizer-args`` gives keyword arguments
besides the learning rate as a JSON object (``'{"betas": [0.9, 0.95], "eps": 1e-8}'``; a list
becomes a tuple), for a name or a path alike. The Python API also takes a factory
``(parameters, lr) -> Optimizer`` (:data:`OptimizerFactory`).

Everything is checked before any training (:func:`check_optimizer_spec`): the path imports
and names an Optimizer subclass, the arguments are a JSON object, and the optimizer accepts
them, built once on a dummy parameter (its own message where it refuses).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lrkit import validation as check
from lrkit.errors import LrkitValueError, quoted

if TYPE_CHECKING:
    from torch import nn, optim

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
ADAPTIVE = ("adam", "adamw")
"""Named optimizers whose step is normalised per coordinate."""

OptimizerFactory = Callable[["Iterator[nn.Parameter]", float], "optim.Optimizer"]
"""(the model's parameters, the learning rate) -> an optimizer (the Python API's form)."""


def is_path(name: str) -> bool:
    """Whether ``name`` is an import path ``module:Class`` rather than one of ``OPTIMIZERS``."""
    return ":" in name


def check_optimizer_name(name: str) -> str:
    """One of ``OPTIMIZERS`` or ``module:Class`` (its spelling only: nothing is imported)."""
    if is_path(name):
        module, _, attribute = name.partition(":")
        if module.strip() and attribute.strip() and ":" not in attribute:
            return name
    elif name in OPTIMIZERS:
        return name
    raise LrkitValueError(
        f"optimizer must be one of {', '.join(OPTIMIZERS)} or module:Class (a "
        f"torch.optim.Optimizer, e.g. torch.optim:RAdam), got {quoted(name)}",
        cli_message=f"--optimizer must be one of {', '.join(OPTIMIZERS)} or module:Class (a "
        f"torch.optim.Optimizer, e.g. torch.optim:RAdam), got {quoted(name)}",
    )


def optimizer_class(path: str) -> type[optim.Optimizer]:
    """The class ``module:Class`` names, refused unless it is a torch.optim.Optimizer."""
    from torch import optim

    module_name, _, attribute = check_optimizer_name(path).partition(":")
    try:
        module = importlib.import_module(module_name.strip())
    except ImportError as exc:
        raise _path_error(path, f"cannot import {module_name.strip()} ({exc})") from None
    found: Any = module
    for part in attribute.strip().split("."):
        found = getattr(found, part, None)
        if found is None:
            raise _path_error(path, f"{module_name.strip()} has no {attribute.strip()}")
    if not (isinstance(found, type) and issubclass(found, optim.Optimizer)):
        raise _path_error(path, f"{attribute.strip()} is not a torch.optim.Optimizer subclass")
    return found


def _path_error(path: str, detail: str) -> LrkitValueError:
    return LrkitValueError(
        f"optimizer {quoted(path)}: {detail}", cli_message=f"--optimizer {quoted(path)}: {detail}"
    )


def optimizer_args(text: str | None) -> dict[str, Any]:
    """The keyword arguments ``text`` gives, a JSON object (lists become tuples); {} for
    None or an empty text."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _args_error(f"is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise _args_error(f"must be a JSON object like '{{\"eps\": 1e-8}}', got {quoted(text)}")
    if "lr" in value or "params" in value:
        raise _args_error("gives lr or params: the learning rate is what lrkit chooses")
    return {key: tuple(v) if isinstance(v, list) else v for key, v in value.items()}


def _args_error(detail: str) -> LrkitValueError:
    return LrkitValueError(f"optimizer_args {detail}", cli_message=f"--optimizer-args {detail}")


def make_optimizer(
    name: str,
    model: nn.Module,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    args: str | None = None,
) -> optim.Optimizer:
    """``name``'s optimizer over ``model``'s parameters at ``lr``: sgd (plain), momentum (SGD
    with ``momentum``), adam, adamw, or ``module:Class``; ``args``, JSON keyword arguments
    besides the lr; ``weight_decay`` where it is not 0 (and ``args`` do not give it)."""
    return optimizer_builder(name, momentum, weight_decay, args)(model.parameters(), lr)


def optimizer_builder(
    name: str, momentum: float = 0.9, weight_decay: float = 0.0, args: str | None = None
) -> Callable[[Any, float], optim.Optimizer]:
    """(parameters, lr) -> the optimizer :func:`make_optimizer` makes."""
    from torch import optim

    name = check_optimizer_name(name)
    weight_decay = check.nonnegative_float("weight_decay", weight_decay)
    keywords = optimizer_args(args)
    if weight_decay and "weight_decay" in keywords:
        raise _args_error("gives weight_decay, and so does --weight-decay: give it once")
    if weight_decay:
        keywords["weight_decay"] = weight_decay
    cls: type[optim.Optimizer]
    if is_path(name):
        cls = optimizer_class(name)
    elif name in ("sgd", "momentum"):
        cls = optim.SGD
        if name == "momentum" and "momentum" not in keywords:
            keywords["momentum"] = check.float_in(
                "momentum", momentum, 0.0, 1.0, low_open=False, high_open=True
            )
    else:
        cls = optim.Adam if name == "adam" else optim.AdamW

    def build(params: Any, lr: float) -> optim.Optimizer:
        return cls(params, lr=lr, **keywords)  # type: ignore[call-arg]

    return build


def check_optimizer_spec(
    name: str, momentum: float = 0.9, weight_decay: float = 0.0, args: str | None = None
) -> None:
    """Everything about the optimizer that can fail, before any training: the name or path,
    the JSON, and the optimizer's own checks of its arguments (built once on a dummy
    parameter)."""
    import torch

    build = optimizer_builder(name, momentum, weight_decay, args)
    dummy = torch.nn.Parameter(torch.zeros(1))
    try:
        build([dummy], 1e-3)
    except Exception as exc:
        label = name if is_path(name) else f"--optimizer {name}"
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise LrkitValueError(
            f"optimizer_args: {label} refuses them: {message}",
            cli_message=f"--optimizer-args: {label} refuses them: {message}",
        ) from None


def check_factory(factory: OptimizerFactory) -> None:
    """A Python factory ``(parameters, lr) -> Optimizer``, called once on a dummy parameter."""
    import torch
    from torch import optim

    if not callable(factory):
        raise LrkitValueError(
            f"optimizer must be a name, module:Class or a factory (parameters, lr) -> "
            f"Optimizer, got {type(factory).__name__}"
        )
    built = factory(iter([torch.nn.Parameter(torch.zeros(1))]), 1e-3)
    if not isinstance(built, optim.Optimizer):
        raise LrkitValueError(
            f"the optimizer factory returned {type(built).__name__}, not a torch.optim.Optimizer"
        )


@dataclass(frozen=True)
class OptimizerSpec:
    """Which optimizer a run trains with: a name or path with its arguments, or a factory."""

    name: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    args: str | None = None
    factory: OptimizerFactory | None = None

    def build(self, params: Any, lr: float) -> optim.Optimizer:
        """The optimizer over ``params`` at ``lr``."""
        if self.factory is not None:
            return self.factory(params, lr)
        return optimizer_builder(self.name, self.momentum, self.weight_decay, self.args)(params, lr)

    def check(self) -> None:
        """Refuse what cannot train before any training (see :func:`check_optimizer_spec`)."""
        if self.factory is not None:
            check_factory(self.factory)
        else:
            check_optimizer_spec(self.name, self.momentum, self.weight_decay, self.args)

    @property
    def label(self) -> str:
        """The optimizer as a person names it: ``adam``, ``torch.optim:RAdam {"eps": 1e-6}``
        (with its arguments), ``a factory (make_adam)``."""
        if self.factory is not None:
            return f"a factory ({getattr(self.factory, '__name__', type(self.factory).__name__)})"
        return f"{self.name} {self.args.strip()}" if self.args else self.name

    @property
    def named(self) -> str:
        """The optimizer's name or path alone (``a factory's optimizer`` for a factory)."""
        return "a factory's optimizer" if self.factory is not None else self.name

    @property
    def sgd(self) -> bool:
        """SGD, plain or with momentum: named so, or a path to ``torch.optim.SGD`` (or a
        subclass); a factory is not known to be."""
        if self.factory is not None:
            return False
        if is_path(self.name):
            from torch import optim

            return issubclass(optimizer_class(self.name), optim.SGD)
        return self.name in ("sgd", "momentum")

    @property
    def adaptive(self) -> bool:
        """A named optimizer whose step is normalised per coordinate (adam, adamw)."""
        return self.factory is None and self.name in ADAPTIVE
