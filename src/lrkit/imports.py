"""Loading a user's object by import path, ``package.module:attribute``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from lrkit.errors import LrkitValueError


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
            f"{option} {path!r} is not an import path of the form module:attribute"
        )
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:  # any failure while importing user code is bad input
        raise LrkitValueError(
            f"{option} {path!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise LrkitValueError(
                f"{option} {path!r}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    return target
