"""Soft-token adapters: frozen backbone states + question in, ``k`` soft tokens out.

Every adapter takes the encoder's :class:`~hyco2.encoder.EncodedBatch` and returns (B, k, hidden_size)
soft tokens in the decoder's input space; the checkpoint's config names which one it holds
(``adapter``), so the compressor, CLI, app and batch mode run any of them unchanged. ``needs_layer_states``
tells the encoder to keep every layer's states (ComprExIT reads them all; the others read the last).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from ..config import HyCo2Config
from .comi import COMIAdapter
from .comprexit import ComprExITAdapter
from .hybrid import HybridAdapter

if TYPE_CHECKING:
    from ..encoder import EncodedBatch

ADAPTERS: dict[str, type[nn.Module]] = {
    "hybrid": HybridAdapter,  # HyCo2: MLP expert + Q-Former, gated
    "comprexit": ComprExITAdapter,  # ComprExIT: depth gate over layers + Sinkhorn transport into slots
    "comi": COMIAdapter,  # COMI: MIG grouping + MIG-weighted merge + projector
}


class SoftAdapter(Protocol):
    name: str
    needs_layer_states: bool

    def __call__(self, encoded: "EncodedBatch") -> torch.Tensor: ...


def build_adapter(config: HyCo2Config) -> nn.Module:
    """The adapter the config names (``hybrid`` for checkpoints written before there was a choice)."""
    try:
        return ADAPTERS[config.adapter](config)
    except KeyError:
        raise ValueError(f"unknown adapter {config.adapter!r}: one of {', '.join(ADAPTERS)}") from None


__all__ = ["ADAPTERS", "COMIAdapter", "ComprExITAdapter", "HybridAdapter", "SoftAdapter", "build_adapter"]
