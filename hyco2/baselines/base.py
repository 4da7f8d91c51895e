"""The interface every hard-selection method shares, so benchmark, app and batch pick one by name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..encoder import ContextEncoder
    from ..encoder import TokenizedContext


@dataclass
class Selection:
    positions: list[int]  # kept token positions, original order, exactly n_keep of them
    scores: list[float] | None = None  # per-token importance, if the method has one
    forward_passes: int = 0  # backbone forwards spent


class Selector(Protocol):
    name: str

    def select(self, encoder: "ContextEncoder", ctx: "TokenizedContext", question: str | None,
               n_keep: int, seed: int = 0) -> Selection: ...
