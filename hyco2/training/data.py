"""Training and evaluation data: SQuAD JSON, JSONL and folders of plain text, as simple records.

Everything is read at run time from the user's files; nothing is bundled.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HyCo2Error
from ..text import as_text

TEXT_SUFFIXES = (".txt", ".md", ".rst")


@dataclass
class QAExample:
    context: str
    question: str
    answers: list[str]
    answer_starts: list[int] = field(default_factory=list)  # character offsets, -1 if unknown
    source: str = ""  # e.g. the SQuAD article title, for splitting by article


def read_squad(path: str | Path, include: set[str] | None = None, exclude: set[str] | None = None,
               answerable_only: bool = True) -> list[QAExample]:
    """SQuAD v1/v2 JSON → examples; ``include``/``exclude`` select articles by title."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise HyCo2Error(f"Cannot read SQuAD file {path}: {exc}") from None
    out = []
    for article in data:
        title = article.get("title", "")
        if (include is not None and title not in include) or (exclude is not None and title in exclude):
            continue
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                if answerable_only and (qa.get("is_impossible") or not qa["answers"]):
                    continue
                out.append(QAExample(
                    context=para["context"], question=qa["question"],
                    answers=[a["text"] for a in qa["answers"]],
                    answer_starts=[a.get("answer_start", -1) for a in qa["answers"]], source=title,
                ))
    return out


def squad_titles(path: str | Path) -> list[str]:
    return [a.get("title", "") for a in json.loads(Path(path).read_text(encoding="utf-8"))["data"]]


def read_jsonl(path: str | Path) -> list[QAExample]:
    """One JSON object a line with ``context``, ``question`` and ``answers`` (a list or a string)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                answers = row["answers"]
                answers = [answers] if isinstance(answers, str) else list(answers)
                starts = [row["context"].find(a) for a in answers]
                out.append(QAExample(row["context"], row["question"], answers, starts, str(path)))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise HyCo2Error(f"{path}:{n}: expected an object with context, question, answers ({exc}).") from None
    return out


def read_qa(path: str | Path, **kwargs) -> list[QAExample]:
    """By file type: ``.jsonl`` → JSONL, ``.json`` → SQuAD."""
    path = Path(path)
    if not path.exists():
        raise HyCo2Error(f"No such data file: {path}")
    return read_jsonl(path) if path.suffix == ".jsonl" else read_squad(path, **kwargs)


def read_texts(path: str | Path, min_chars: int = 200) -> list[str]:
    """Paragraph-sized texts from a text file, a folder of them, or the contexts of a QA file."""
    path = Path(path)
    if path.suffix in (".json", ".jsonl"):
        seen, out = set(), []
        for ex in read_qa(path):
            if ex.context not in seen:
                seen.add(ex.context)
                out.append(ex.context)
        return out
    files = sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES) if path.is_dir() else [path]
    out = []
    for f in files:
        try:
            text = as_text(f.read_bytes(), str(f))
        except (HyCo2Error, OSError):
            continue  # pretraining text is best-effort: skip binary or broken files
        out.extend(p.strip() for p in text.split("\n\n") if len(p.strip()) >= min_chars)
    return out


def split_for_completion(text: str, rng: random.Random, min_words: int = 5, max_words: int = 45) -> tuple[str, str]:
    """Prefix and continuation: the last 5–45 words are the target, as in the paper's stage 2."""
    words = text.split(" ")
    n = rng.randint(min_words, max(min_words, min(max_words, len(words) // 3)))
    return " ".join(words[:-n]), " " + " ".join(words[-n:])
