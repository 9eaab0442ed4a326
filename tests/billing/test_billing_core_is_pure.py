"""``billing.core`` is a functional core: no module imports a database, file, network, clock or concurrency
library or a billing adapter, and none calls the clock or ``open`` (checked on the source; lint-imports checks
the imports too, ``pyproject.toml``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import billing.core

CORE = Path(billing.core.__file__).parent
MODULES = sorted(CORE.glob("*.py"))
IO_MODULES = (
    "asyncio",
    "httpx",
    "jinja2",
    "kernel.clock",
    "kernel.db",
    "kernel.outbox",
    "kernel.timeutil",
    "os",
    "pathlib",
    "socket",
    "sqlalchemy",
    "stripe",
    "subprocess",
    "threading",
    "time",
    "urllib",
)
CLOCK_AND_FILES = {"now", "utcnow", "today", "open", "monotonic", "perf_counter"}


def test_the_core_modules_are_found() -> None:
    assert {p.stem for p in MODULES} >= {
        "documents",
        "lines",
        "vat",
        "credit_notes",
        "numbering",
        "dunning",
        "aging",
    }


def problems_of(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if any(module == io or module.startswith(io + ".") for io in IO_MODULES):
                    found.append(f"imports {module}")
                if module.startswith("billing.") and not module.startswith("billing.core"):
                    found.append(f"imports the adapter {module}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if name in CLOCK_AND_FILES:
                found.append(f"calls {name}() on line {node.lineno}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_core_module_does_no_io(path: Path) -> None:
    assert problems_of(path.read_text(encoding="utf-8")) == []


def test_the_check_sees_a_clock_and_a_database() -> None:
    source = "import sqlalchemy\nfrom datetime import date\ndef f():\n    return date.today()\n"
    assert problems_of(source) == ["imports sqlalchemy", "calls today() on line 4"]
