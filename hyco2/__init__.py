"""HyCo2: hybrid context compression (soft tokens for the gist + kept tokens for the facts).

Layout follows the paper's figure: ``backbone`` (frozen LLM) → ``encoder`` (its hidden states) →
``adapter`` (global view: soft tokens) and ``selector`` (local view: kept tokens) → ``compressor``
(the API) → ``training`` (three stages).
"""
from .backbone import DEFAULT_BACKBONE, Backbone, load_backbone
from .compressor import Answer, CompressionResult, HyCo2Compressor
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
from .modeling import HyCo2Model
from .settings import CompressionSettings

__version__ = "0.6.0"

__all__ = [
    "DEFAULT_BACKBONE", "Answer", "Backbone", "BackboneMismatchError", "CheckpointError",
    "CompressionResult", "CompressionSettings", "ContextTooLongError", "EmptyInputError", "HyCo2Compressor", "HyCo2Config",
    "HyCo2Error", "HyCo2Model", "HyCo2OutOfMemoryError", "InvalidSettingError", "InvalidTextError",
    "ModelNotInstalledError", "UnknownModelError", "load_backbone",
]
