"""User-facing errors.

Every failure a user can cause (bad input, a missing model, a wrong checkpoint) is raised as a
subclass of :class:`HyCo2Error` with a message that says what to do, so that callers (the app,
batch mode) can show it instead of a stack trace from inside torch.
"""
from __future__ import annotations


class HyCo2Error(Exception):
    """Base class of every error HyCo2 raises on purpose."""


class EmptyInputError(HyCo2Error, ValueError):
    """The context or the question is empty or only whitespace."""


class InvalidTextError(HyCo2Error, ValueError):
    """The input is not text: undecodable bytes, NUL bytes or mostly control characters."""


class ContextTooLongError(HyCo2Error, ValueError):
    """The context does not fit the backbone's window."""

    def __init__(self, n_tokens: int, limit: int):
        self.n_tokens = n_tokens
        self.limit = limit
        super().__init__(
            f"The context has {n_tokens} backbone tokens; this backbone reads at most {limit} in one "
            f"pass. Compressed modes take any length (the text is compressed chunk by chunk); the "
            f"full-context mode and the peers read one window: compress first, or use a backbone with a "
            f"longer window."
        )


class InvalidSettingError(HyCo2Error, ValueError):
    """A compression setting (rate, budget, threshold, mode, method) is out of range."""


class UnknownModelError(HyCo2Error, ValueError):
    """A model name is neither a local folder, a known alias, nor loadable from a hub."""


class ModelNotInstalledError(HyCo2Error, RuntimeError):
    """The embedded default backbone's package is not installed."""


class CheckpointError(HyCo2Error, ValueError):
    """A HyCo2 checkpoint folder is missing, incomplete or corrupt."""


class BackboneMismatchError(CheckpointError):
    """A checkpoint was trained for another backbone than the one loaded."""


class HyCo2OutOfMemoryError(HyCo2Error, MemoryError):
    """The device ran out of memory; the message says how to fit."""
