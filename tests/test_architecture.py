"""The package's shape: imports run one way (layers <- pipeline <- applications) without
cycles, and no module or class outgrows one concept."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Source folder of each top-level sub-package (setuptools' package-dir).
FOLDERS = {"porting": ROOT / "porting", "porting.models": ROOT / "models",
           "porting.converters": ROOT / "converters", "porting.validation": ROOT / "validation"}
APPLICATIONS = ("porting.converters", "porting.validation", "porting.train", "porting.export",
                "porting.demo", "porting.cli", "porting.convert_matconvnet",
                "porting.convert_caffe", "porting.compare", "porting.validate",
                "porting.convert_checkpoint")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if pkg == "porting" and parts and parts[0] in ("models", "converters", "validation"):
                continue
            out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """``porting.*`` modules imported anywhere in the file (also inside functions)."""
    return _node_imports(ast.parse(path.read_text()), name, path)


def _layer(module: str) -> int:
    if module.startswith("porting.layers"):
        return 0
    if module.startswith(APPLICATIONS):
        return 2
    return 1


def test_imports_run_one_way() -> None:
    mods = _modules()
    wrong = []
    for name, path in mods.items():
        for imp in _imports(name, path):
            target = imp if imp in mods else imp.rsplit(".", 1)[0]
            if target in mods and target != "porting" and _layer(target) > _layer(name):
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_no_import_cycle_at_module_level() -> None:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module-level imports only: lazy ones cannot cycle at import
            if isinstance(node, ast.Import | ast.ImportFrom):
                for imp in _node_imports(node, name, path):
                    target = imp if imp in mods else imp.rsplit(".", 1)[0]
                    if target in mods and target != name and not name.startswith(target + "."):
                        deps.add(target)
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack + [n, d]))
            if not state.get(d):
                visit(d, stack + [n])
        state[n] = 2

    for n in graph:
        if not state.get(n):
            visit(n, [])


def _node_imports(node: ast.AST, name: str, path: Path) -> set[str]:
    """``porting.*`` modules imported by ``node`` (relative imports resolved)."""
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - n.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in n.names)
    return {m for m in found if m.startswith("porting")}


#: "No module over ~600 lines, no class over ~200": the bounds, with a margin for the
#: approximation (caffe_proto's schema table is 647 lines, the MatConvNet reader 242).
MODULE_LINES, CLASS_LINES = 650, 250


def test_modules_and_classes_stay_small() -> None:
    big = []
    for name, path in _modules().items():
        lines = path.read_text().count("\n")
        if lines > MODULE_LINES:
            big.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno > CLASS_LINES:
                big.append(f"{name}.{node.name}: {node.end_lineno - node.lineno} lines")
    assert not big, big


def _edges(name: str, path: Path, mods: dict[str, Path]) -> dict[str, list[str]]:
    """Modules of the package that ``name`` imports ANYWHERE (module level, functions,
    ``if`` blocks), each with the names it takes from it; ``from pkg import mod`` is an
    edge to ``pkg.mod``, and a module's own parent packages are not edges."""
    out: dict[str, list[str]] = {}
    is_pkg = path.name == "__init__.py"
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            for a in n.names:
                out.setdefault(a.name, [])
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - n.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            for a in n.names:
                if f"{base}.{a.name}" in mods:
                    out.setdefault(f"{base}.{a.name}", [])
                else:
                    out.setdefault(base, []).append(a.name)
    return {m: names for m, names in out.items()
            if m in mods and m != name and not name.startswith(m + ".")}


def test_no_import_cycle_anywhere() -> None:
    """Also through imports inside functions: a lazy import hides a circle, it does not
    remove it (the two modules still cannot be understood, or moved, one without the other)."""
    mods = _modules()
    graph = {name: set(_edges(name, path, mods)) for name, path in mods.items()}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [n, d]
                                          if d in stack else [n, d]))
            elif not state.get(d):
                visit(d, stack + [n])
        state[n] = 2

    for n in sorted(graph):
        if not state.get(n):
            visit(n, [])
    assert not cycles, cycles


def test_no_module_imports_another_modules_private_name() -> None:
    """What two modules share is public and lives below both: no ``from m import _name``
    and no ``m._name`` on an imported module, anywhere in the package."""
    mods = _modules()
    wrong = []
    for name, path in mods.items():
        edges = _edges(name, path, mods)
        for module, names in edges.items():
            wrong += [f"{name}: from {module} import {n}" for n in names
                      if n.startswith("_") and not n.startswith("__")]
        aliases = {}
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom | ast.Import):
                for a in n.names:
                    aliases[a.asname or a.name.split(".")[0]] = a.name
        for n in ast.walk(ast.parse(path.read_text())):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                    and n.attr.startswith("_") and not n.attr.startswith("__")
                    and n.value.id in aliases and any(
                        m.endswith("." + aliases[n.value.id]) or m == aliases[n.value.id]
                        for m in edges)):
                wrong.append(f"{name}: {n.value.id}.{n.attr}")
    assert not wrong, sorted(set(wrong))
