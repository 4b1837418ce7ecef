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
