"""The package's shape, held by a test: every module in one layer, imports only downward (those
inside functions counted), no import cycle, no SQL against the ledger outside ``store/``, the
vocabulary spelled in one module, no module too long to read, and a root that shows the layers."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parent.parent / "mlpipeline"

# Lowest first. A module imports from its own layer and those below it, never above. A module is in the
# layer of the longest prefix that names it.
LAYERS: List[Tuple[str, Tuple[str, ...]]] = [
    ("vocabulary and paths", ("mlpipeline.core",)),
    ("processes", ("mlpipeline.proc",)),
    ("the script API: what runs inside a version's process",
     ("mlpipeline.script", "mlpipeline.data", "mlpipeline.helper", "mlpipeline.utils", "mlpipeline.keras",
      "mlpipeline.sweeps", "mlpipeline.global_values", "mlpipeline.integrations", "mlpipeline.base",
      "mlpipeline.entities", "mlpipeline.pytorch")),
    ("storage: every SQL statement against the ledger", ("mlpipeline.store",)),
    ("planning: configs, describing scripts, the queue as planned", ("mlpipeline.plan",)),
    ("the read model: runs, status, outputs", ("mlpipeline.read", "mlpipeline.outputs")),
    ("executors: where versions run", ("mlpipeline.execution",)),
    ("the loop and its batch", ("mlpipeline.run",)),
    ("shells: the command line, the dashboard, imports from the original",
     ("mlpipeline.cli", "mlpipeline.commands", "mlpipeline.commands_repro", "mlpipeline.commands_curate",
      "mlpipeline.commands_search",
      "mlpipeline.web", "mlpipeline.compat", "mlpipeline.__main__")),
]
# the script API's paths
ORIGINAL_NAMES = {"helper", "utils", "global_values", "keras", "sweeps", "outputs", "data", "base", "entities"}
MAX_LINES = 600
SQL = re.compile(r"^\s*(SELECT .* FROM|INSERT (OR \w+ )?INTO|UPDATE \w+ SET|DELETE FROM|PRAGMA \w|"
                 r"CREATE (TEMP |UNIQUE )?(TABLE|INDEX|VIEW)|DROP (TABLE|INDEX|VIEW)|ALTER TABLE|BEGIN IMMEDIATE)")
STATUS_LITERALS_ALLOWED = 6  # where a status is data, not a comparison (documentation strings aside)


def _modules() -> Dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    best = (-1, -1)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = (index, len(prefix))
    return best[0]


def _imports(name: str, path: Path) -> Set[str]:
    """The package's modules ``name`` imports, at module level or inside a function (not under
    ``if TYPE_CHECKING``: nothing runs there)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            if not target.startswith("mlpipeline"):
                continue
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_module_is_in_a_layer():
    unplaced = sorted(m for m in MODULES if m != "mlpipeline" and _layer(m) < 0)
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"


def test_imports_go_only_downward_those_inside_functions_too():
    upward = sorted(f"{m} -> {t} ({LAYERS[_layer(t)][0]})" for m, targets in GRAPH.items() for t in targets
                    if m != "mlpipeline" and t != "mlpipeline" and _layer(t) > _layer(m))
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_no_import_cycle_among_the_packages_modules():
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    cycles: List[List[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles (function-local imports counted): {cycles}"


def test_the_runner_is_only_a_loop_over_parts_it_is_given():
    """The loop imports no executor (it holds one it was given) and no read model."""
    loop = {m for m in MODULES if m.startswith("mlpipeline.run.") and m not in ("mlpipeline.run.batch",
                                                                               "mlpipeline.run.predict",
                                                                               "mlpipeline.run.rerun")}
    reaching = sorted(f"{m} -> {t}" for m in loop for t in GRAPH[m]
                      if t.startswith(("mlpipeline.execution", "mlpipeline.read")))
    assert not reaching, reaching


def test_no_sql_against_the_ledger_outside_the_storage_package():
    found = []
    for name, path in MODULES.items():
        if name.startswith(("mlpipeline.store", "mlpipeline.data")):  # data: SQLLoader reads the user's databases
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
            if text is not None and SQL.match(text):
                found.append(f"{name}:{node.lineno}: {text[:50]!r}")
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "executescript"):
                found.append(f"{name}:{node.lineno}: .{node.attr}(")
    assert not found, "SQL outside mlpipeline/store:\n" + "\n".join(found)


def test_statuses_are_spelled_only_by_the_vocabulary():
    from mlpipeline.core.vocabulary import RunStatus

    values = {status.value for status in RunStatus}
    found = []
    for name, path in MODULES.items():
        if name == "mlpipeline.core.vocabulary":
            continue
        tree = ast.parse(path.read_text())
        skip = {id(node.body[0].value) for node in ast.walk(tree)  # docstrings
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):  # a record's field named like a status (state["running"]) is no status
            if isinstance(node, ast.Subscript):
                skip.add(id(node.slice))
            elif isinstance(node, ast.Dict):
                skip.update(id(key) for key in node.keys if key is not None)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("get", "pop", "setdefault") \
                    and node.args:
                skip.add(id(node.args[0]))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in values and id(node) not in skip:
                found.append(f"{name}:{node.lineno}: {node.value!r}")
    assert len(found) <= STATUS_LITERALS_ALLOWED, "statuses spelled as strings:\n" + "\n".join(found)


def test_no_module_is_too_long_to_read():
    long = sorted(f"{name}: {len(path.read_text().splitlines())} lines" for name, path in MODULES.items()
                  if len(path.read_text().splitlines()) > MAX_LINES)
    assert not long, long


def test_the_root_holds_the_script_api_and_a_few_entry_points():
    root = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ORIGINAL_NAMES | {"__init__"})
    assert len(root) <= 15, root
    assert all((PACKAGE / name).exists() or (PACKAGE / f"{name}.py").exists() for name in ORIGINAL_NAMES)


def module_map() -> str:
    """The README's module map: each folder, what its package says it is, and its modules."""
    lines = []
    for package in sorted({name.rpartition(".")[0] if not (PACKAGE.parent / name.replace(".", "/") / "__init__.py")
                           .exists() else name for name in MODULES}):
        path = PACKAGE.parent / package.replace(".", "/") / "__init__.py"
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = " ".join(doc.split("\n\n")[0].split())
        members = sorted(name.rpartition(".")[2] for name, path in MODULES.items()
                         if name.rpartition(".")[0] == package and path.name != "__init__.py")
        folder = package.replace(".", "/") + "/"
        lines.append(f"- `{folder}` — {first}" if package != "mlpipeline" else
                     "- `mlpipeline/` — the entry points and the original's import paths:")
        lines.append("  " + ", ".join(f"`{m}`" for m in members))
    return "\n".join(lines) + "\n"


MAP_START, MAP_END = "<!-- module map: python tests/test_layers.py writes it -->\n", "<!-- end of the module map -->\n"


def test_the_readme_maps_the_modules_as_they_are():
    readme = (PACKAGE.parent / "README.md").read_text()
    assert MAP_START in readme and MAP_END in readme, "README.md has no module map"
    shown = readme.split(MAP_START, 1)[1].split(MAP_END, 1)[0]
    assert shown == module_map(), "README's module map is stale: run python tests/test_layers.py"


if __name__ == "__main__":  # rewrite the README's module map
    readme_path = PACKAGE.parent / "README.md"
    text = readme_path.read_text()
    head, rest = text.split(MAP_START, 1)
    readme_path.write_text(head + MAP_START + module_map() + MAP_END + rest.split(MAP_END, 1)[1])
