"""The project's shape: one installed namespace, imports one way and without cycles, light top-level imports.

The import graph is read from the source (AST), so it sees lazy imports inside functions too; imports
under ``if TYPE_CHECKING:`` are annotations only and are left out. The installation checks start fresh
interpreters outside the repository, as a user's script would.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"tapmesh": "tapmesh", "tapmesh.pcells": "pcells", "tapmesh.circuits": "circuits",
           "tapmesh.calibration": "calibration", "tapmesh.training": "training"}
STAGES = ("tapmesh.pcells", "tapmesh.circuits", "tapmesh.calibration", "tapmesh.training")
# what each stage may import besides itself (DESIGN.md: training → calibration → circuits, circuits → pcells
# only where a model is extracted from a layout; the CLI and flow in tapmesh/ sit on top of everything)
ALLOWED = {
    "tapmesh.pcells": set(),
    "tapmesh.circuits": set(),
    "tapmesh.calibration": {"tapmesh.circuits"},
    "tapmesh.training": {"tapmesh.calibration", "tapmesh.circuits"},
}
LAYOUT_EXTRACTION = {("tapmesh.circuits.layout", "tapmesh.pcells")}


# ----------------------------------------------------------------------------- the graph
def project_modules() -> dict[str, Path]:
    """Module name → source file, for every module of the project's packages."""
    modules = {}
    for package, folder in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if package == "tapmesh" and parts[0] in {f for f in FOLDERS.values() if f != "tapmesh"}:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def _strip_type_checking(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                node.body = []


def imports_of(name: str, path: Path, modules) -> set[str]:
    """The project modules that module ``name`` (file ``path``) imports, resolved to the deepest module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    _strip_type_checking(tree)
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]

    def deepest(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub where it is one
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                       for alias in node.names]
        for target in targets:
            resolved = deepest(target)
            if resolved is not None and resolved != name:
                found.add(resolved)
    return found


@lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (read once per test session)."""
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def stage_of(module: str) -> str:
    for stage in STAGES:
        if module == stage or module.startswith(stage + "."):
            return stage
    return "tapmesh"


def direction_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in sorted(graph.items()):
        s = stage_of(source)
        if s == "tapmesh":
            continue  # the CLI and flow may use every stage
        for target in sorted(targets):
            t = stage_of(target)
            if t == s or t in ALLOWED[s] or (source, t) in LAYOUT_EXTRACTION:
                continue
            bad.append(f"{source} imports {target}")
    return bad


# ----------------------------------------------------------------------------- tests of the graph
def test_the_graph_sees_the_project():
    graph = import_graph()
    assert {"tapmesh.cli", "tapmesh.calibration.procedure", "tapmesh.circuits.engine", "tapmesh.pcells.mesh",
            "tapmesh.training.network"} <= set(graph)
    # absolute, `from pkg import submodule` and relative imports are all resolved
    assert "tapmesh.calibration.progressive" in graph["tapmesh.calibration.procedure"]
    assert "tapmesh.calibration.correction" in graph["tapmesh.calibration.calibration"]
    assert "tapmesh.circuits" in graph["tapmesh.calibration.procedure"]
    assert "tapmesh.pcells.schedule" in graph["tapmesh.pcells.mesh"]
    assert "tapmesh.pcells.schedule" in graph["tapmesh.circuits.layout"]  # lazy, inside a function


def test_cycle_and_direction_checks_catch_what_they_should():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert direction_violations({"tapmesh.circuits.engine": {"tapmesh.calibration.chip"},
                                 "tapmesh.calibration.virtual": {"tapmesh.circuits", "tapmesh.training.data"},
                                 "tapmesh.circuits.layout": {"tapmesh.pcells.schedule"},
                                 "tapmesh.circuits.reference": {"tapmesh.pcells"}}) == [
        "tapmesh.calibration.virtual imports tapmesh.training.data",
        "tapmesh.circuits.engine imports tapmesh.calibration.chip",
        "tapmesh.circuits.reference imports tapmesh.pcells",
    ]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_imports_point_one_way():
    assert direction_violations(import_graph()) == []


# ----------------------------------------------------------------------------- the installation
def _fresh(code: str, cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter started in ``cwd`` (outside the repository, no PYTHONPATH);
    it prints one JSON object."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_only_tapmesh_is_installed_and_its_top_import_and_circuits_stay_light(tmp_path):
    result = _fresh(
        "import importlib.util, json, sys\n"
        "out = {'top': {n: importlib.util.find_spec(n) is not None for n in "
        "('circuits', 'pcells', 'calibration', 'training')}}\n"
        "out['sub'] = {n: importlib.util.find_spec(n) is not None for n in "
        "('tapmesh.circuits', 'tapmesh.pcells', 'tapmesh.calibration', 'tapmesh.training')}\n"
        "import tapmesh\n"
        "out['tapmesh'] = sorted(m for m in ('jax', 'gdsfactory', 'sax') if m in sys.modules)\n"
        "import tapmesh.circuits\n"
        "out['circuits'] = sorted(m for m in ('gdsfactory', 'klayout', 'kfactory') if m in sys.modules)\n"
        "out['jax_loaded'] = 'jax' in sys.modules\n"
        "print(json.dumps(out))\n",
        tmp_path,
    )
    assert result["top"] == {"circuits": False, "pcells": False, "calibration": False, "training": False}
    assert all(result["sub"].values()), result["sub"]
    assert result["tapmesh"] == []
    assert result["circuits"] == []
    assert result["jax_loaded"]  # the check is live: tapmesh.circuits did load its own engine


def test_pcells_does_not_import_jax(tmp_path):
    result = _fresh(
        "import json, sys\nimport tapmesh.pcells\n"
        "print(json.dumps({'jax': 'jax' in sys.modules, 'gdsfactory': 'gdsfactory' in sys.modules}))\n",
        tmp_path,
    )
    assert result == {"jax": False, "gdsfactory": True}


@pytest.mark.parametrize("name", ["tapmesh.calibration", "tapmesh.training"])
def test_module_docstrings_say_what_the_module_does(name):
    """Every module of the split packages opens with a docstring (its job in a few sentences)."""
    missing = [m for m, path in project_modules().items()
               if stage_of(m) == name and ast.get_docstring(ast.parse(path.read_text())) is None]
    assert missing == []
