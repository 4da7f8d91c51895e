"""The checkpoint's configuration: sizes, the backbone it belongs to, and where it came from."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Version 2 added ``kept_gap`` (the reader's format is part of the checkpoint); version 3 the choice of
#: ``adapter`` and its sizes (``layer_states``, ``sinkhorn_*``); version 4 ``classifier_context``; version 5
#: ``soft_token_span`` and ``max_soft_tokens``. Older files load as they always read (no gap, the hybrid
#: adapter, no classifier context, ``num_soft_tokens`` for every chunk); a file of a newer version,
#: or with keys this version does not know, is refused with a message rather than read wrongly.
FORMAT_VERSION = 5


@dataclass
class HyCo2Config:
    """Everything needed to rebuild a :class:`~hyco2.modeling.HyCo2Model` without its weights."""

    hidden_size: int  # the backbone's width; soft tokens live in its embedding space
    backbone: str = "smollm2-135m-instruct"
    backbone_fingerprint: dict[str, Any] = field(default_factory=dict)
    num_soft_tokens: int = 16
    #: soft tokens grow with the chunk (hybrid adapter only): one per ``soft_token_span`` context tokens,
    #: never fewer than ``num_soft_tokens`` nor more than ``max_soft_tokens``; 0 = ``num_soft_tokens`` for
    #: every chunk, whatever its length (see :meth:`soft_token_count`)
    soft_token_span: int = 0
    max_soft_tokens: int = 64
    #: which soft-token adapter (hyco2.adapters.ADAPTERS): "hybrid" (HyCo2), "comprexit", "comi"
    adapter: str = "hybrid"
    #: hidden states the adapter reads per token: 0 = the last layer only; the backbone's layers + 1
    #: (embeddings and every layer) for comprexit
    layer_states: int = 0
    sinkhorn_eps: float = 0.1  # comprexit: entropic regularisation of the transport
    sinkhorn_iters: int = 30  # comprexit: unrolled Sinkhorn iterations
    adapter_dim: int = 384
    adapter_heads: int = 8
    qformer_layers: int = 2
    ffn_mult: int = 2
    classifier_dim: int = 256
    #: the classifier also matches each context token against the question's tokens (see
    #: RetentionClassifier); False for checkpoints trained before it existed
    classifier_question: bool = False
    #: bidirectional attention layers the classifier runs over [question; context] before scoring (see
    #: RetentionClassifier); 0 = each token scored from its own causal state, as checkpoints before it
    classifier_context: int = 0
    embedding_rms: float = 1.0  # initial scale of the soft tokens
    default_rate: float = 0.15
    #: text the decoder reads between two kept spans that were not adjacent in the context ("" = none):
    #: the reader's format, trained with the checkpoint (a separator tells the decoder where text is missing)
    kept_gap: str = ""
    trained: bool = False
    training: dict[str, Any] = field(default_factory=dict)  # data, steps, seed, losses
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.soft_token_span < 0:
            raise ValueError(f"soft_token_span must be 0 (a fixed count) or positive, not {self.soft_token_span}")
        if self.soft_token_span and self.adapter != "hybrid":
            raise ValueError(f"soft_token_span needs the hybrid adapter; {self.adapter!r} makes a fixed count")
        if self.soft_token_span and self.max_soft_tokens < self.num_soft_tokens:
            raise ValueError(f"max_soft_tokens ({self.max_soft_tokens}) is below num_soft_tokens "
                             f"({self.num_soft_tokens})")

    def soft_token_count(self, context_tokens: int) -> int:
        """How many soft tokens a chunk of ``context_tokens`` tokens gets.

        Why it may grow: 16 soft tokens summarise a 150-token paragraph at ~10x but ten passages at ~90x;
        with a span, a longer chunk keeps its gist at a similar density, and a short one is unchanged."""
        if not self.soft_token_span:
            return self.num_soft_tokens
        want = -(-int(context_tokens) // self.soft_token_span)  # ceil
        return max(self.num_soft_tokens, min(self.max_soft_tokens, want))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HyCo2Config":
        version = data.get("format_version", 1)
        if not isinstance(version, int) or version < 1 or version > FORMAT_VERSION:
            raise ValueError(f"format_version {version!r}: this hyco2 reads versions 1 to {FORMAT_VERSION}; "
                             "upgrade hyco2 to load this checkpoint")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)} for format_version {version}")
        return cls(**{**data, "format_version": FORMAT_VERSION})

    def save(self, folder: str | Path) -> None:
        path = Path(folder) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> "HyCo2Config":
        return cls.from_dict(json.loads((Path(folder) / CONFIG_NAME).read_text(encoding="utf-8")))
