"""The README's configuration table, generated from :class:`kernel.settings.Settings` (defaults and descriptions).

Run ``.venv/bin/python scripts/settings_table.py --write`` after changing a setting: it rewrites the table in
README.md in place (without ``--write`` it prints the table). ``tests/core/test_settings.py`` fails while the
README's table differs from this output.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kernel.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| variable | default | meaning |"


def render() -> str:
    """The table, one line per field, ending with a newline."""
    lines = [HEADER, "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = (
            "(empty)"
            if default in ("", None)
            else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        )
        lines.append(f"| `EVHUB_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def readme_table(text: str) -> str:
    """The configuration table as it stands in the README text (from its header to the first non-table line)."""
    start = text.index(HEADER)
    lines = text[start:].splitlines(keepends=True)
    table = []
    for line in lines:
        if not line.startswith("|"):
            break
        table.append(line)
    return "".join(table)


def write(readme: Path = README) -> None:
    text = readme.read_text(encoding="utf-8")
    readme.write_text(text.replace(readme_table(text), render(), 1), encoding="utf-8")


def main(argv: list[str]) -> None:
    if "--write" in argv:
        write()
    else:
        sys.stdout.write(render())


if __name__ == "__main__":
    main(sys.argv[1:])
