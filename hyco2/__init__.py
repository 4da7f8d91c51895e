"""HyCo2: hybrid context compression (soft tokens for the gist + kept tokens for the facts).

Layout follows the paper's figure: ``backbone`` (frozen LLM, ``forward`` its passes) → ``encoder`` (its
hidden states) → ``adapter`` (global view: soft tokens) and ``classifier`` + ``selection`` (local view:
kept tokens; peers in ``baselines``) → ``modeling`` (the trainable part) → ``compressor`` (context in,
:class:`CompressionResult` out) → ``reader`` (the decoder answers from it) → ``training`` (three stages).
"""
from importlib import import_module

from .config import HyCo2Config
from .errors import (
    BackboneMismatchError,
    CheckpointError,
    ContextTooLongError,
    EmptyInputError,
    HyCo2Error,
    HyCo2OutOfMemoryError,
    InvalidSettingError,
    InvalidTextError,
    ModelNotInstalledError,
    UnknownModelError,
)
from .settings import CompressionSettings

__version__ = "0.6.0"

#: Names that need torch and the model code, loaded on first use: ``import hyco2`` (and the batch CLI's
#: report and export) start in a fraction of a second.
_LAZY = {
    "DEFAULT_BACKBONE": "backbone", "Backbone": "backbone", "load_backbone": "backbone",
    "CompressionResult": "compressor", "HyCo2Compressor": "compressor",
    "HyCo2Model": "modeling", "HyCo2Output": "modeling",
    "Answer": "reader", "HyCo2Reader": "reader", "Mode": "reader",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "DEFAULT_BACKBONE", "Answer", "Backbone", "BackboneMismatchError", "CheckpointError",
    "CompressionResult", "CompressionSettings", "ContextTooLongError", "EmptyInputError", "HyCo2Compressor", "HyCo2Config",
    "HyCo2Error", "HyCo2Model", "HyCo2Output", "HyCo2OutOfMemoryError", "HyCo2Reader", "Mode", "InvalidSettingError", "InvalidTextError",
    "ModelNotInstalledError", "UnknownModelError", "load_backbone",
]
