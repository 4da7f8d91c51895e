"""README.md, docs/DESIGN.md and docs/RESULTS.md name only files and library objects that exist; the README
stays short enough for a newcomer."""
import importlib
import re

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "docs" / "DESIGN.md", ROOT / "docs" / "RESULTS.md"]
PATH = re.compile(r"`((?:hyco2|bench|batch|ui|scripts|tests|docs|assets)/[\w./-]+|[\w-]+\.(?:py|sh|toml))`")
DOTTED = re.compile(r"\bhyco2(?:\.[A-Za-z_]\w*)+")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_paths_exist(doc):
    text = doc.read_text(encoding="utf-8")
    paths = {m.group(1) for m in PATH.finditer(text)}
    assert paths, "the pattern should find some paths"
    missing = sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists() and not (ROOT / "docs" / p).exists())
    assert not missing, f"{doc.name} names missing files: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_library_objects_exist(doc):
    missing = []
    for name in sorted(set(DOTTED.findall(doc.read_text(encoding="utf-8")))):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert not missing, f"{doc.name} names missing objects: {missing}"


def test_readme_is_short_and_leads_with_the_same_reader():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, "history belongs in docs/RESULTS.md"
    results = text[text.index("## Results"):]
    assert results.index("keep-all") < results.index("raw backbone, full context")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_files_named_from_git_history_are_there(doc):
    """Earlier result files live in git, not in the tree: every `git show REV:PATH` a document names exists."""
    import subprocess

    refs = set(re.findall(r"git show ([0-9a-f]{7,40}):([\w./{},-]+)", doc.read_text(encoding="utf-8")))
    if not refs:
        return
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    if shallow.returncode != 0:
        pytest.skip("not a git checkout")
    if shallow.stdout.strip() == "true":
        pytest.skip("a shallow clone holds no history to look in")
    missing = []
    for rev, path in sorted(refs):
        for p in _expand_braces(path.rstrip(".,")):
            if subprocess.run(["git", "cat-file", "-e", f"{rev}:{p}"], cwd=ROOT, capture_output=True).returncode:
                missing.append(f"{rev}:{p}")
    assert not missing, f"{doc.name} names files git does not hold: {missing}"


def _expand_braces(path: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    return [q for alt in m.group(1).split(",") for q in _expand_braces(path[:m.start()] + alt + path[m.end():])]
