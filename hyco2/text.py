"""Input validation: turn whatever the user passed into clean text, or fail clearly."""
from __future__ import annotations

import re

from .errors import EmptyInputError, InvalidTextError

#: Between documents (or paragraphs) joined into one context: chunking, distractor contexts, what the
#: decoder reads for a document list.
DOCUMENT_SEPARATOR = "\n\n"
#: What the encoder is conditioned on when a context comes without a question.
GENERIC_INSTRUCTION = "Summarize the key facts of the document."
#: How a sentence ends (a closing quote or bracket may follow the mark): where chunking prefers to cut a
#: long text and where the sentence-level peers split their units.
SENTENCE_ENDS = (".", "!", "?", ".\"", "!\"", "?\"", ".'", ".)")

#: Share of control characters (other than tab/newline/carriage return) above which a string is
#: treated as binary data that was decoded by accident.
MAX_CONTROL_SHARE = 0.01
#: Unicode categories Cc (controls) and Cs (surrogates) but tab, newline and carriage return: one regex
#: scan instead of a category lookup per character (which cost ~0.15 ms a SQuAD paragraph).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def as_text(value: str | bytes | None, what: str = "context") -> str:
    """Return ``value`` as a validated ``str``.

    Bytes must be UTF-8 (a BOM is allowed): guessing an encoding silently corrupts names and
    numbers, which is exactly what compression must keep.
    """
    if value is None:
        raise EmptyInputError(f"The {what} is missing: pass a non-empty text.")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            value = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidTextError(
                f"The {what} is not valid UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r}). "
                f"Convert it to UTF-8 first, e.g. `iconv -f latin1 -t utf-8`."
            ) from None
    if not isinstance(value, str):
        raise InvalidTextError(f"The {what} must be text (str or UTF-8 bytes), not {type(value).__name__}.")
    if "\x00" in value:
        raise InvalidTextError(f"The {what} contains NUL bytes: it looks like a binary file, not text.")
    if not value.strip():
        raise EmptyInputError(f"The {what} is empty: pass a non-empty text.")
    control = len(_CONTROL.findall(value))
    if control > MAX_CONTROL_SHARE * len(value):
        raise InvalidTextError(
            f"The {what} is {control / len(value):.0%} control characters: it looks like binary data, not text."
        )
    return value
