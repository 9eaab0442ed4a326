"""Regenerate the initial migration (0001) from the models.

Only while no release has shipped: before the first release the schema is one migration, regenerated after
model changes with ``.venv/bin/python scripts/regen_initial_migration.py``. After the first release every
change gets its own migration (``alembic revision --autogenerate``) and this script is retired.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from alembic import command
from alembic.ddl.sqlite import SQLiteImpl

from kernel.db.engine import Database
from kernel.db.migrate import MIGRATIONS_DIR, alembic_config


async def main() -> None:
    target = MIGRATIONS_DIR / "versions" / "0001_initial.py"
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'empty.db'}")
        cfg = alembic_config()

        def _run(sync_conn) -> None:  # type: ignore[no-untyped-def]
            cfg.attributes["connection"] = sync_conn
            command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")

        # Generated against an empty database, so nothing is compared: the expression indexes (upper(...)) that
        # SQLite cannot reflect, and autogenerate would skip on it, are written like every other index.
        with mock.patch.object(SQLiteImpl, "correct_for_autogen_constraints", lambda *args: None):
            async with db.engine.begin() as conn:
                await conn.run_sync(_run)
        await db.dispose()
    generated = next((MIGRATIONS_DIR / "versions").glob("0001_*.py"))
    text = generated.read_text().replace("astext_type=Text()", "astext_type=sa.Text()")
    text = text.replace(
        "from sqlalchemy.dialects import postgresql\n", "from sqlalchemy.dialects import postgresql\n\n"
    )
    target.write_text(text)
    generated.unlink()
    for args in (["format"], ["check", "--fix", "--unsafe-fixes"]):
        subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--quiet", str(target)], check=False, capture_output=True
        )
    print(f"wrote {target}")


if __name__ == "__main__":
    asyncio.run(main())
