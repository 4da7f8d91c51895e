"""HyCo2: hybrid context compression (soft tokens for the gist + kept tokens for the facts).

Layout follows the paper's figure: ``backbone`` (frozen LLM, ``forward`` its passes) → ``encoder`` (its
hidden states) → ``adapter`` (global view: soft tokens) and ``classifier`` + ``selection`` (local view:
kept tokens; peers in ``baselines``) → ``modeling`` (the trainable part) → ``compressor`` (context in,
:class:`CompressionResult` out) → ``reader`` (the decoder answers from it) → ``training`` (three stages).
"""
from .backbone import DEFAULT_BACKBONE, Backbone, load_backbone
from .compressor import CompressionResult, HyCo2Compressor
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
from .modeling import HyCo2Model, HyCo2Output
from .reader import Answer, HyCo2Reader, Mode
from .settings import CompressionSettings

__version__ = "0.6.0"

__all__ = [
    "DEFAULT_BACKBONE", "Answer", "Backbone", "BackboneMismatchError", "CheckpointError",
    "CompressionResult", "CompressionSettings", "ContextTooLongError", "EmptyInputError", "HyCo2Compressor", "HyCo2Config",
    "HyCo2Error", "HyCo2Model", "HyCo2Output", "HyCo2OutOfMemoryError", "HyCo2Reader", "Mode", "InvalidSettingError", "InvalidTextError",
    "ModelNotInstalledError", "UnknownModelError", "load_backbone",
]
