"""The test suite's own hygiene: no test module imports another test module (shared fixtures live in a
``conftest.py``, shared seeding in :mod:`tests.world`), so every test module can be read, moved and run alone."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imported_modules(tree: ast.AST, package: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, anywhere in the file (also inside functions),
    relative imports resolved against ``package``; for ``from pkg import name`` also ``pkg.name``, which may be a
    module."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _is_test_module(name: str) -> bool:
    return name.split(".")[-1].startswith("test_")


def test_no_test_module_imports_another_test_module() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS.parent)
        package = ".".join(rel.with_suffix("").parts[:-1])
        for name in sorted(_imported_modules(ast.parse(path.read_text(), str(path)), package)):
            if name.startswith("tests.") and _is_test_module(name):
                offenders.append(f"{rel} imports {name}")
    assert offenders == [], "\n".join(offenders)


def test_the_check_sees_every_kind_of_import() -> None:
    source = """
import tests.core.test_a
from tests.tariffs.test_b import helper
from tests.portal import test_c
from .test_d import x

def later():
    from tests.e2e.test_e import y
"""
    found = {n for n in _imported_modules(ast.parse(source), "tests.core") if _is_test_module(n)}
    assert found == {
        "tests.core.test_a",
        "tests.tariffs.test_b",
        "tests.portal.test_c",
        "tests.core.test_d",
        "tests.e2e.test_e",
    }
