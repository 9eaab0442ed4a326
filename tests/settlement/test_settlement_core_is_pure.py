"""``settlement.core`` is the functional core: none of its modules imports a database, file, network, clock or
concurrency library, an adapter of ``settlement``, or calls the clock or ``open`` (checked on the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import settlement.core

CORE = Path(settlement.core.__file__).parent
MODULES = sorted(CORE.glob("*.py"))
IO_MODULES = (
    "asyncio",
    "dask",
    "distributed",
    "httpx",
    "jinja2",
    "kernel.clock",
    "kernel.db",
    "os",
    "pathlib",
    "requests",
    "shutil",
    "socket",
    "sqlalchemy",
    "subprocess",
    "tempfile",
    "threading",
    "time",
    "urllib",
)
CLOCK_AND_FILES = {"now", "utcnow", "today", "open", "monotonic", "perf_counter"}


def _imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_core_modules_are_found() -> None:
    assert {p.stem for p in MODULES} >= {"agreements", "split", "run", "accounting_periods"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_core_module_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for module, names in _imports(tree):
        if any(_is_under(module, io) for io in IO_MODULES):
            problems.append(f"imports {module}")
        if _is_under(module, "settlement") and not _is_under(module, "settlement.core"):
            problems.append(f"imports the adapter {module}")
        problems += [f"imports {module}.{name}" for name in names if name in CLOCK_AND_FILES]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if name in CLOCK_AND_FILES:
                problems.append(f"calls {name}() on line {node.lineno}")
    assert problems == [], f"{path.name}: " + "; ".join(problems)
