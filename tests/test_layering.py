"""The package's layering, checked from the source with ``ast``.

* No import cycle between packages, counting imports inside functions.
* Only public names cross a package boundary: another package's modules are imported
  through its ``__init__`` (never ``aioforest.tree._plan``) and no imported name starts
  with an underscore. The root package's own modules (``aioforest._validation``,
  ``aioforest._base``, ...) are the shared foundation every package may use, by their
  public names.
* Every package's ``__init__`` has a docstring and an ``__all__``.
* No function is longer than about 80 lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "aioforest"
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    """``aioforest.tree`` for ``aioforest.tree._plan``; top-level modules are their own."""
    parts = module.split(".")
    if len(parts) >= 2 and (ROOT / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def _imports() -> list[tuple[str, str, list[str], int]]:
    """(importing module, imported module, names, line) for every aioforest import."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                names = [a.name for a in node.names]
                if target.startswith("aioforest"):
                    out.append((module, target, names, node.lineno))
            elif isinstance(node, ast.Import):
                out.extend((module, a.name, [], node.lineno) for a in node.names
                           if a.name.startswith("aioforest"))
    return out


def _is_submodule(module: str) -> bool:
    return (ROOT.parent / Path(*module.split("."))).with_suffix(".py").exists() or (
        ROOT.parent / Path(*module.split(".")) / "__init__.py"
    ).exists()


def test_there_is_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst, names, _ in _imports():
        targets = [dst]
        if _package(dst) == dst and dst.count(".") == 1:
            # ``from aioforest.tree import _plan`` imports a module of the package
            targets += [f"{dst}.{n}" for n in names if _is_submodule(f"{dst}.{n}")]
        for t in targets:
            if _package(src) != _package(t):
                graph[_package(src)].add(_package(t))
    # the root package (``aioforest``) re-exports everything and sits on top
    for deps in graph.values():
        deps.discard("aioforest")
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles between packages:\n" + "\n".join(cycles)


def test_only_public_names_cross_package_boundaries() -> None:
    bad = []
    for src, dst, names, line in _imports():
        if _package(src) == _package(dst):
            continue
        foundation = _package(dst).count(".") == 1 and not (ROOT / dst.split(".")[1]).is_dir()
        private_module = not foundation and any(
            part.startswith("_") for part in dst.split(".")[2:]
        )
        private_names = [n for n in names if n.startswith("_") and n != "__version__"]
        if private_module or private_names:
            where = f"{src.replace('.', '/')}.py:{line}"
            bad.append(f"{where}: from {dst} import {', '.join(names)}")
    assert not bad, "private imports across packages:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "package", sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
)
def test_every_package_says_what_it_offers(package: str) -> None:
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    assert ast.get_docstring(tree), f"aioforest/{package}/__init__.py has no docstring"
    assigned = {t.id for n in tree.body if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name)}
    assert "__all__" in assigned, f"aioforest/{package}/__init__.py has no __all__"


def test_no_function_is_longer_than_80_lines() -> None:
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} "
                                f"{node.name}: {n} lines")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)
