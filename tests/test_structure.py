"""The package's import graph: no circle and no import from a lower floor to a higher one, lazy
(function-level) imports and the package ``__init__`` files that an import runs included."""
import ast

from tests.conftest import ROOT

PKG = ROOT / "hyco2"


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """Modules of hyco2 imported anywhere in the file, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("hyco2"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)  # "from . import x" may name a module
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("hyco2"))
    return out


#: The floors of the paper's figure, lowest first: a module imports only from its own floor or below.
FLOORS = [
    {"errors", "config", "text", "options", "counting", "metrics", "batching", "transfer"},
    {"backbone", "forward"},  # the frozen LLM and its passes
    {"encoder", "prompting", "chunking"},  # its hidden states, its prompts, long texts cut to its window
    {"adapters", "classifier", "selection", "baselines"},  # the global view, the local view, the peers
    {"settings", "modeling"},
    {"compressor", "highlight"},
    {"reader", "compat"},
    {"training", "__main__", "batch", "app", "integrations", ""},  # what users run: training, the CLI, batch mode, the app
]


def _floor(module):
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else ""
    return next(i for i, names in enumerate(FLOORS) if head in names)


def _graph():
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for m, p in modules.items():
        targets = {t for t in _imports(p) if t in modules and t != m}
        for t in list(targets):  # importing a.b.c runs a.b's __init__ first, unless the importer is inside a.b
            parts = t.split(".")
            targets.update(".".join(parts[:n]) for n in range(2, len(parts)) if ".".join(parts[:n]) in modules)
        graph[m] = {t for t in targets if t != m and not m.startswith(t + ".") and t != "hyco2"}
    return graph


def test_every_module_has_a_floor_and_imports_none_above_it():
    graph = _graph()
    upward = [f"{m} -> {t}" for m, ts in graph.items() for t in ts if _floor(t) > _floor(m)]
    assert not upward, "imports from a higher floor: " + ", ".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert len(graph) > 15


def test_report_and_export_start_without_torch():
    """``hyco2-batch report`` / ``export`` and ``import hyco2`` load no model code (a 7 s torch import on
    a small CPU, for reading a SQLite file); the library's names load on first use."""
    import subprocess
    import sys

    code = ("import sys, hyco2, hyco2.batch, hyco2.batch.__main__; assert 'torch' not in sys.modules, 'torch'; "
            "from hyco2 import HyCo2Compressor, HyCo2Reader, Mode; assert 'torch' in sys.modules; "
            "assert 'HyCo2Reader' in dir(hyco2)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
