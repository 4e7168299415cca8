"""Loading a user's object by import path, ``package.module:attribute``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from lrkit.errors import LrkitValueError, quoted


def is_import_path(text: str) -> bool:
    """True for ``module:attribute`` (as opposed to a built-in name)."""
    module, sep, attribute = text.partition(":")
    return bool(sep and module and attribute)


def load_object(path: str, option: str) -> object:
    """Import ``module:attribute`` (dots allowed on both sides); the working directory is on
    ``sys.path``, as for ``python -m``. Errors name the option and what failed."""
    module_name, sep, attribute = path.partition(":")
    if not (sep and module_name and attribute):
        raise LrkitValueError(
            f"{option} {quoted(path)} is not an import path of the form module:attribute"
        )
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:  # any failure while importing user code is bad input
        raise LrkitValueError(
            f"{option} {quoted(path)}: cannot import {quoted(module_name)} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise LrkitValueError(
                f"{option} {quoted(path)}: {quoted(module_name)} has no attribute "
                f"{quoted(attribute)}"
            ) from None
    return target
