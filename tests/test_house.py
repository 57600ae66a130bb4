"""The shape of the code, checked: one owner for the run folder's file names, dependency directions,
no import cycles, small modules. A change that breaks one of these fails here, not in review."""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "reslab"
RUN_FOLDER_NAMES = ("summary.json", "metrics.jsonl", "config.toml", "gradients.jsonl", "last.pt", "best.pt",
                    "experiment.json", "report.html", "analysis", "tb", "checkpoints")


def modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path, ast.parse(path.read_text())


def docstring_nodes(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                yield first.value


def imports(name, tree, *, top_level_only=False):
    """reslab modules imported by ``name`` (absolute names)."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("reslab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reslab"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in KNOWN}


ALL = list(modules())
KNOWN = {m for m, _, _ in ALL}


def test_only_the_run_folder_module_spells_run_folder_file_names():
    offenders = []
    for name, path, tree in ALL:
        if name.startswith("reslab.rundir"):
            continue
        docs = {id(n) for n in docstring_nodes(tree)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if node.value in RUN_FOLDER_NAMES or any(node.value.endswith("/" + f) for f in RUN_FOLDER_NAMES):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_no_other_module_even_mentions_them():
    """The grep of the issue: not in code, messages, comments or docstrings either (the module
    ``reslab.report.html`` is a module's name, not the report's file)."""
    pattern = re.compile("|".join(re.escape(n) for n in RUN_FOLDER_NAMES if "." in n) + r"|analysis/|\btb/")
    hits = []
    for name, path, _ in ALL:
        if name.startswith("reslab.rundir"):
            continue
        for i, line in enumerate(path.read_text().replace("reslab.report.html", "").splitlines(), start=1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(SRC)}:{i}: {line.strip()}")
    assert hits == []


RULES = [
    # (importer prefix, forbidden prefix, why)
    ("reslab.train", "reslab.models", "the trainer takes any nn.Module"),
    ("reslab.analysis", "reslab.train", "analysis never uses the trainer"),
    ("reslab.analysis", "reslab.workflows", "measurements do not drive runs"),
    ("reslab.workflows.restore", "reslab.train", "restoring a run is trainer-free"),
    ("reslab.workflows.evaluate", "reslab.train", "evaluating a run is trainer-free"),
    ("reslab.workflows.analyze", "reslab.train", "analysis drivers are trainer-free"),
    ("reslab.report", "reslab.models", "the report reads files"),
    ("reslab.report", "reslab.train", "the report reads files"),
    ("reslab.report", "reslab.workflows", "the report reads files"),
    ("reslab.report", "reslab.analysis", "the report reads files"),
    ("reslab.models", "reslab.", "models import nothing from reslab but registry and errors"),
    ("reslab.optim", "reslab.", "optimizers import nothing from reslab but registry and errors"),
    ("reslab.schedules", "reslab.", "schedules import nothing from reslab but registry and errors"),
    ("reslab.", "reslab.cli", "only the command line reads argv"),
]
ALLOWED_EVERYWHERE = ("reslab.registry", "reslab.errors")


@pytest.mark.parametrize("importer, forbidden, why", RULES)
def test_dependency_directions(importer, forbidden, why):
    bad = []
    for name, _, tree in ALL:
        if not name.startswith(importer) or (forbidden == "reslab.cli" and name.startswith(("reslab.cli", "reslab.__main__"))):
            continue
        for target in imports(name, tree):
            if target.startswith(importer.rstrip(".")) and forbidden == "reslab.":
                continue  # a package's own modules
            if target.startswith(forbidden) and not target.startswith(ALLOWED_EVERYWHERE):
                bad.append(f"{name} -> {target}")
    assert bad == [], why


def test_no_import_cycles_at_module_level():
    graph = {}
    for name, _, tree in ALL:
        graph[name] = {t for t in imports(name, tree, top_level_only=True) if t != name}
    # a package's __init__ importing its own submodules is the usual layout, not a cycle of concern
    def edges(n):
        return {t for t in graph.get(n, ()) if not (t.startswith(n + "."))}

    state, cycles = {}, []

    def visit(n, stack):
        state[n] = "open"
        for t in edges(n):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[n] = "done"

    for n in graph:
        if n not in state:
            visit(n, [n])
    assert cycles == []


def test_modules_stay_small():
    big = [f"{path.relative_to(SRC)} ({len(path.read_text().splitlines())} lines)"
           for _, path, _ in ALL if len(path.read_text().splitlines()) > 300]
    assert big == []


def test_the_test_files_scheduled_first_exist():
    """tests/conftest.py names the slowest test files so the workers start them first; a renamed or deleted
    file would silently drop out of that order."""
    tests = Path(__file__).resolve().parent
    tree = ast.parse((tests / "conftest.py").read_text())
    (names,) = [ast.literal_eval(n.value) for n in tree.body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SLOWEST_FILES"]
    assert names and [n for n in names if not (tests / n).is_file()] == []
