"""The trainable part of HyCo2 (adapter + retention classifier) as a loadable, savable model."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import CONFIG_NAME, WEIGHTS_NAME, HyCo2Config
from .adapters import build_adapter
from .errors import BackboneMismatchError, CheckpointError
from .classifier import RetentionClassifier

if TYPE_CHECKING:
    from .encoder import EncodedBatch


class HyCo2Output(NamedTuple):
    """What one encoder pass gives the compressor (a named tuple: DDP and ``soft, logits = ...`` both take it)."""

    soft_tokens: torch.Tensor  # (B, k, D) in the decoder's input space
    keep_logits: torch.Tensor  # (B, Lc) the retention classifier's logit per context token


class HyCo2Model(nn.Module):
    """Adapter (any of :data:`hyco2.adapters.ADAPTERS`, by ``config.adapter``) + classifier. The backbone
    is not part of it: checkpoints stay a few MB."""

    def __init__(self, config: HyCo2Config):
        super().__init__()
        self.config = config
        self.adapter = build_adapter(config)
        self.classifier = RetentionClassifier(config)

    def forward(self, encoded: "EncodedBatch") -> HyCo2Output:
        """Soft tokens (B, k, D) and keep logits (B, Lc) from one encoder pass.

        Inference and training both call this, so a wrapper (DDP, autocast) sees one module call.
        """
        soft = self.adapter(encoded)
        return HyCo2Output(soft, self.classifier(encoded.context_states, encoded.question_states,
                                                 encoded.question_mask, encoded.context_mask))

    def set_soft_token_span(self, span: int, max_soft_tokens: int) -> None:
        """Let longer chunks get more soft tokens (see :meth:`HyCo2Config.soft_token_count`); no new weights:
        the hybrid adapter reads its extra queries off its learned ones, so a chunk that keeps
        ``num_soft_tokens`` gives the same soft tokens as before."""
        replace(self.config, soft_token_span=span, max_soft_tokens=max_soft_tokens)  # checks the pair
        self.config.soft_token_span, self.config.max_soft_tokens = span, max_soft_tokens

    @property
    def needs_layer_states(self) -> bool:
        """Whether the encoder must keep every layer's states for this model's adapter."""
        return bool(self.adapter.needs_layer_states)

    def save_pretrained(self, folder: str | Path, dtype: torch.dtype = torch.float16) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "library": "hyco2"})
        self.config.save(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path, fingerprint: dict | None = None) -> "HyCo2Model":
        """Load a checkpoint; with ``fingerprint``, refuse one trained for another backbone."""
        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
            raise CheckpointError(
                f"{folder} is not a HyCo2 checkpoint: it needs {CONFIG_NAME} and {WEIGHTS_NAME}."
            )
        try:
            config = HyCo2Config.load(folder)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{folder / CONFIG_NAME} is not a valid HyCo2 config: {exc}") from None
        if fingerprint is not None:
            check_fingerprint(config, fingerprint)
        try:
            model = cls(config)
        except ValueError as exc:  # an adapter this hyco2 does not have, or sizes it cannot build
            raise CheckpointError(f"{folder / CONFIG_NAME}: {exc}") from None
        try:
            state = load_file(str(folder / WEIGHTS_NAME))
            model.load_state_dict({k: v.float() for k, v in state.items()})
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for corrupt files
            raise CheckpointError(f"{folder / WEIGHTS_NAME} is corrupt or does not fit its config: {str(exc)[:300]}") from None
        return model


def check_fingerprint(config: HyCo2Config, fingerprint: dict) -> None:
    expected = config.backbone_fingerprint
    diff = {k: (expected.get(k), fingerprint.get(k)) for k in expected if expected.get(k) != fingerprint.get(k)}
    if diff:
        details = ", ".join(f"{k}: checkpoint {a} vs loaded {b}" for k, (a, b) in diff.items())
        raise BackboneMismatchError(
            f"This checkpoint was trained for backbone {config.backbone!r}, which differs from the loaded "
            f"one ({details}). Load it with --model {config.backbone} or train a checkpoint for your model."
        )
