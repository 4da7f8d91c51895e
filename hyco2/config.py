"""The checkpoint's configuration: sizes, the backbone it belongs to, and where it came from."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


@dataclass
class HyCo2Config:
    """Everything needed to rebuild a :class:`~hyco2.modeling.HyCo2Model` without its weights."""

    hidden_size: int  # the backbone's width; soft tokens live in its embedding space
    backbone: str = "smollm2-135m-instruct"
    backbone_fingerprint: dict[str, Any] = field(default_factory=dict)
    num_soft_tokens: int = 16
    adapter_dim: int = 384
    adapter_heads: int = 8
    qformer_layers: int = 2
    ffn_mult: int = 2
    classifier_dim: int = 256
    #: the classifier also matches each context token against the question's tokens (see
    #: RetentionClassifier); False for checkpoints trained before it existed
    classifier_question: bool = False
    embedding_rms: float = 1.0  # initial scale of the soft tokens
    default_rate: float = 0.15
    trained: bool = False
    training: dict[str, Any] = field(default_factory=dict)  # data, steps, seed, losses
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HyCo2Config":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, folder: str | Path) -> None:
        path = Path(folder) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> "HyCo2Config":
        return cls.from_dict(json.loads((Path(folder) / CONFIG_NAME).read_text(encoding="utf-8")))
