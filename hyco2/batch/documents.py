"""Finding documents in a folder safely and extracting their text."""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from hyco2.errors import HyCo2Error
from hyco2.text import as_text

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".json", ".jsonl"}
JSON_FIELDS = ("text", "content", "context", "body")
DEFAULT_MAX_BYTES = 5_000_000


@dataclass
class Found:
    path: Path  # absolute, inside the root
    rel: str  # relative to the root, with forward slashes
    skip_reason: str | None = None


def discover(root: Path, pattern: str, check_only: bool = False) -> list[Found]:
    """Files under ``root`` matching ``pattern``, never leaving the folder.

    Symbolic links that resolve outside the root and patterns that climb out ("..") are refused
    with a reason instead of being followed; so are files that are not regular (a named pipe would
    block the reader). ``check_only``: only check the pattern.
    """
    if ".." in Path(pattern).parts or Path(pattern).is_absolute():
        raise HyCo2Error(f"--glob {pattern!r} must stay inside the folder (no '..', not absolute).")
    if check_only:
        return []
    base = root.resolve()
    out = []
    real_dirs: dict[Path, Path] = {}  # each folder resolved once (resolving walks every part of a path)
    for path in sorted(root.glob(pattern)):
        if path.is_dir():
            continue
        rel = path.relative_to(root).as_posix()
        try:
            if path.is_symlink():
                real = path.resolve(strict=True)
            else:
                if path.parent not in real_dirs:
                    real_dirs[path.parent] = path.parent.resolve(strict=True)
                real = real_dirs[path.parent] / path.name
        except (OSError, RuntimeError):
            out.append(Found(path, rel, "broken symbolic link"))
            continue
        if not real.is_relative_to(base):
            out.append(Found(path, rel, "symbolic link to a path outside the folder: not followed"))
        elif not _regular(real):  # a named pipe would block the reader forever, a device never end
            out.append(Found(path, rel, "not a regular file (a named pipe, socket or device): not read"))
        elif path.suffix.lower() not in TEXT_SUFFIXES:
            out.append(Found(path, rel, f"unsupported file type {path.suffix or '(none)'}"))
        else:
            out.append(Found(real, rel))
    return out


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class _TextOfHTML(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHTML()
    parser.feed(html)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _json_text(value, fields: tuple[str, ...]) -> list[str]:
    if isinstance(value, dict):
        named = [value[f] for f in fields if isinstance(value.get(f), str)]
        return named or [s for v in value.values() for s in _json_text(v, fields)]
    if isinstance(value, list):
        return [s for v in value for s in _json_text(v, fields)]
    return [value] if isinstance(value, str) else []


def extract_text(path: Path, raw: bytes, fields: tuple[str, ...] = JSON_FIELDS) -> str:
    """Text of a document by its type; raises HyCo2Error subclasses for bad content."""
    text = as_text(raw, f"file {path.name}")
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        text = html_to_text(text)
    elif suffix in (".json", ".jsonl"):
        try:
            values = [json.loads(line) for line in text.splitlines() if line.strip()] if suffix == ".jsonl" \
                else [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise HyCo2Error(f"{path.name} is not valid JSON: {exc}") from None
        text = "\n\n".join(s.strip() for v in values for s in _json_text(v, fields) if s.strip())
    return as_text(text, f"text of {path.name}")


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
