"""Training and evaluation data: SQuAD JSON, JSONL and folders of plain text, as simple records.

Everything is read at run time from the user's files; nothing is bundled.
"""
from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HyCo2Error
from ..text import DOCUMENT_SEPARATOR, as_text

TEXT_SUFFIXES = (".txt", ".md", ".rst")


@dataclass
class QAExample:
    context: str
    question: str
    answers: list[str]
    answer_starts: list[int] = field(default_factory=list)  # character offsets, -1 if unknown
    source: str = ""  # e.g. the SQuAD article title, for splitting by article
    gold_start: int = 0  # where the paragraph holding the answer starts in ``context`` (characters)
    gold_paragraph: str | None = None  # that paragraph, when ``context`` holds distractors too

    @property
    def paragraph(self) -> str:
        """The paragraph the question was written for (the whole context when it has no distractors)."""
        return self.context if self.gold_paragraph is None else self.gold_paragraph


def _read_json(path: Path):
    """JSON, gzip-compressed or not (``.gz``)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def read_squad(path: str | Path, include: set[str] | None = None, exclude: set[str] | None = None,
               answerable_only: bool = True) -> list[QAExample]:
    """SQuAD v1/v2 JSON → examples; ``include``/``exclude`` select articles by title."""
    try:
        data = _read_json(Path(path))["data"]
    except (OSError, KeyError, json.JSONDecodeError, EOFError) as exc:
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
    return [a.get("title", "") for a in _read_json(Path(path))["data"]]


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
    """By file type: ``.jsonl`` → JSONL, ``.json`` / ``.json.gz`` → SQuAD."""
    path = Path(path)
    if not path.exists():
        raise HyCo2Error(f"No such data file: {path}")
    return read_jsonl(path) if path.suffix == ".jsonl" else read_squad(path, **kwargs)


def read_texts(path: str | Path, min_chars: int = 200, limit: int | None = None) -> list[str]:
    """Paragraph-sized texts from a text file, a folder of them, the contexts of a QA file, or a
    ``.jsonl.gz`` of ``{"text": ...}`` articles (the shared Wikipedia/Wikinews dumps); ``limit`` caps
    how many paragraphs are read (the dumps hold millions)."""
    path = Path(path)
    if path.name.endswith(".jsonl.gz"):
        out = []
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                text = json.loads(line).get("text", "")
                out.extend(p.strip() for p in text.split("\n") if len(p.strip()) >= min_chars)
                if limit is not None and len(out) >= limit:
                    return out[:limit]
        return out
    if path.suffix in (".json", ".jsonl") or path.name.endswith(".json.gz"):
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


DISTRACTORS = ("article", "other")


def with_distractors(examples: list[QAExample], k: int, seed: int = 0,
                     max_chars: int | None = None, distractors: str = "article") -> list[QAExample]:
    """Each question's paragraph among ``k - 1`` others, in a seeded order, joined by DOCUMENT_SEPARATOR.

    ``distractors="article"``: from the same article (``source``) first, then from other articles when
    the article is too short (a long document). ``"other"``: only from other articles (a retrieved
    document list, where most passages are off-topic). ``answer_starts`` are shifted to the new
    context. ``max_chars`` drops distractors (never the gold paragraph) until the context fits.
    Deterministic for a seed.
    """
    if distractors not in DISTRACTORS:
        raise ValueError(f"distractors must be one of {DISTRACTORS}, not {distractors!r}")
    if k <= 1:
        return list(examples)
    by_source: dict[str, list[str]] = {}
    for ex in examples:
        paras = by_source.setdefault(ex.source, [])
        if ex.paragraph not in paras:
            paras.append(ex.paragraph)
    all_paras = [p for paras in by_source.values() for p in paras]
    out = []
    for n, ex in enumerate(examples):
        rng = random.Random(f"{seed}:{n}:{ex.question}")
        gold = ex.paragraph
        same = [p for p in by_source[ex.source] if p != gold]
        rng.shuffle(same)
        chosen = same[: k - 1] if distractors == "article" else []
        own = set(by_source[ex.source]) if distractors == "other" else {gold}
        room = len(all_paras) - len(own)
        while len(chosen) < k - 1 and room > len(chosen):
            p = rng.choice(all_paras)
            if p not in own and p not in chosen:
                chosen.append(p)
        sep = len(DOCUMENT_SEPARATOR)
        if max_chars is not None:
            while chosen and len(gold) + sum(len(p) + sep for p in chosen) > max_chars:
                chosen.pop()
        chosen.insert(rng.randint(0, len(chosen)), gold)
        context = DOCUMENT_SEPARATOR.join(chosen)
        shift = sum(len(p) + sep for p in chosen[: chosen.index(gold)])
        out.append(QAExample(context, ex.question, list(ex.answers),
                             [s + shift if s >= 0 else s for s in ex.answer_starts], ex.source, shift, gold))
    return out
