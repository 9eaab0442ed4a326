"""The layers of docs/design.md hold: kernel at the bottom, the stages above it, the assembly (``evhub``) on top.

``lint-imports`` checks the contracts written in ``pyproject.toml`` (layers, public surfaces, no cycles; it reads
imports inside functions too). The AST check here adds what import-linter cannot say: below the assembly, no
project import hides inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = (
    "kernel",
    "cpo_gateway",
    "tariffs",
    "ocpi",
    "settlement",
    "billing",
    "portal",
    "simulators",
    "evhub",
)
ASSEMBLY = "evhub"


def imports_inside_functions(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a project package made inside a function or method."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                names = [inner.module]
            elif isinstance(inner, ast.ImportFrom):  # a relative import inside a function
                names = [f"{'.' * inner.level}{inner.module or ''}"]
            elif isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            else:
                continue
            found += [(inner.lineno, n) for n in names if n.startswith(".") or n.split(".")[0] in PROJECT]
    return found


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_project_import_hides_inside_a_function_below_the_assembly() -> None:
    hidden = []
    for package in PROJECT:
        if package == ASSEMBLY:
            continue
        for path in sorted((REPO / package).rglob("*.py")):
            hidden += [
                f"{path.relative_to(REPO)}:{line} imports {module}"
                for line, module in imports_inside_functions(path.read_text())
            ]
    assert hidden == [], "move these imports to the top of their module:\n" + "\n".join(hidden)


def test_the_check_sees_a_hidden_import() -> None:
    source = (
        "import json\n"
        "from kernel.money import round_amount\n"
        "def f():\n"
        "    import os\n"
        "    from tariffs.engine import price_session\n"
        "    from . import sibling\n"
        "class C:\n"
        "    async def g(self):\n"
        "        import ocpi.push\n"
    )
    assert imports_inside_functions(source) == [(5, "tariffs.engine"), (6, "."), (9, "ocpi.push")]
