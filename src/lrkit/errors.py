"""Errors lrkit raises for bad arguments, and the interruption the CLI reports.

Every bad argument raises a subclass of :class:`ValueError`. The CLI prints the same message
on one line, with parameters spelled as its options (``step_size`` as ``--step-size``), and
exits with status 2; a library caller can catch ``ValueError``.
"""

from __future__ import annotations


def option_name(param: str) -> str:
    """A parameter's command-line spelling: ``step_size`` -> ``--step-size``."""
    return "--" + param.replace("_", "-")


class LrkitValueError(ValueError):
    """A bad argument. The message is one line and names what is allowed."""

    def __init__(self, message: str, *, cli_message: str | None = None) -> None:
        super().__init__(message)
        self._cli_message = cli_message

    def cli_message(self) -> str:
        """The message with parameters spelled as command-line options."""
        return self._cli_message if self._cli_message is not None else str(self)


class InvalidParameterError(LrkitValueError):
    """A parameter outside its allowed range.

    ``param`` is the parameter's Python name (``step_size``); ``requirement`` says what is
    allowed (``"an integer > 0"``); ``value`` is what was given.
    """

    def __init__(self, param: str, requirement: str, value: object) -> None:
        self.param = param
        self.requirement = requirement
        self.value = value
        given = shown(value)
        super().__init__(
            f"{param} must be {requirement}, got {given}",
            cli_message=f"{option_name(param)} must be {requirement}, got {given}",
        )


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command's work. The message says what was kept and how to resume;
    the CLI prints it on one line and exits with status 130.

    A :class:`KeyboardInterrupt`, not an :class:`Exception`: on its way out to the CLI no
    ``except Exception`` swallows it, as none swallows Ctrl-C itself."""


def quoted(text: str) -> str:
    """A name or path as a person reads it, in quotes: ``'it's here'``, where ``repr`` would
    write ``"it's here"`` or escape a backslash."""
    return f"'{text}'"


def shortened(text: str, most: int = 60) -> str:
    """A path or name in a message, as written, or, when longer than ``most`` characters,
    its start and end around an ellipsis with its length: the line stays one a person reads."""
    if len(text) <= most:
        return text
    return f"{text[: most // 2]}...{text[-most // 4 :]} ({len(text)} characters)"


def shown(value: object) -> str:
    """A given value in a message: strings quoted, lists in brackets, numbers as they are."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return quoted(value) if isinstance(value, str) else str(value)
