"""Every dvc.yaml stage lists, in its deps, every project module its command imports.

The imports are read statically (``ast``), anywhere in a module (imports inside functions
included), and followed transitively through ``fussbench/`` and ``stages/``; importing a
module runs its packages' ``__init__.py`` too. A stage's command ``fussbench <command>``
starts in ``fussbench/cli.py``: the command function, the private helpers it calls, and
cli's module-level imports. A folder dep covers every file under it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fussbench", "stages")
CLI = "fussbench/cli.py"
NOT_DEPS = {
    CLI: "the dispatcher every stage runs: its command bodies parse options and call the "
    "stage module (whose imports are followed); listing it would rerun every stage, "
    "feature caches included, on a help-text edit",
}
"""Files a stage runs but deliberately does not list, with the reason."""


def _module_file(module: str) -> Path | None:
    """The file of a project module (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(path: Path) -> str:
    """``fussbench/data/camvid.py`` -> ``fussbench.data`` (the package it is in)."""
    return ".".join(path.relative_to(REPO).parent.parts)


def _runtime_nodes(node: ast.AST):
    """``node`` and every node below it, except the bodies of ``if TYPE_CHECKING:``."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
            yield from (inner for other in child.orelse for inner in _runtime_nodes(other))
            continue
        yield from _runtime_nodes(child)


def _imports(nodes: list[ast.stmt], package: str) -> set[str]:
    """Project modules named by the import statements among ``nodes`` (and below them),
    leaving out the imports for type checkers only."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.Module(body=nodes, type_ignores=[])):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if _module_file(module) is not None}


@cache
def _closure(module: str) -> frozenset[Path]:
    """Files run by importing ``module``: itself, its packages' ``__init__``, and every
    project module they import, transitively."""
    seen: set[Path] = set()
    stack = [module]
    while stack:
        name = stack.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            path = _module_file(".".join(parts[:depth]))
            if path is None or path in seen:
                continue
            seen.add(path)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            package = ".".join(parts[:depth]) if path.name == "__init__.py" else _package_of(path)
            stack.extend(_imports([tree], package))
    return frozenset(seen)


def _command_files(command: str) -> set[Path]:
    """Files the CLI command ``command`` runs (``fussbench/cli.py`` included)."""
    tree = ast.parse((REPO / CLI).read_text(encoding="utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert command in functions, f"fussbench/cli.py has no command '{command}'"
    top = [node for node in tree.body if not isinstance(node, ast.FunctionDef)]
    reached, todo = {command}, [command]
    while todo:
        called = {
            node.func.id
            for node in ast.walk(functions[todo.pop()])
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        helpers = {name for name in called if name.startswith("_") and name in functions}
        todo.extend(helpers - reached)
        reached |= helpers
    modules = _imports([*top, *(functions[name] for name in reached)], "fussbench")
    files = {REPO / CLI}
    for module in modules:
        files |= _closure(module)
    return files


def _stages() -> dict[str, dict]:
    """dvc.yaml's stages, a ``foreach`` / ``matrix`` stage by its ``do`` body."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def _covered(path: str, deps: list[str]) -> bool:
    """Whether ``path`` (relative) is a dep or lies in a folder dep."""
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def missing_deps(stage: dict) -> list[str]:
    """Project files the stage's command runs that its deps do not cover, sorted."""
    command = stage["cmd"].split()[1]
    files = sorted(str(path.relative_to(REPO)) for path in _command_files(command))
    return [path for path in files if path not in NOT_DEPS and not _covered(path, stage["deps"])]


@pytest.mark.parametrize("name", list(_stages()))
def test_stage_deps_cover_every_module_its_command_imports(name: str) -> None:
    assert missing_deps(_stages()[name]) == []


def test_the_check_follows_lazy_and_relative_imports() -> None:
    files = {str(path.relative_to(REPO)) for path in _command_files("features")}
    assert "fussbench/features/backbones.py" in files  # imported inside stages.features.run
    assert "fussbench/features/views.py" in files
    export = {str(path.relative_to(REPO)) for path in _closure("fussbench.engines.flower.export")}
    assert "fussbench/engines/flower/site.py" in export  # from .site import write_site
    assert not any(path.startswith("stages/") for path in export)
