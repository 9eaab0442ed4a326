"""Usage errors of the console script (an unparsable value, a missing argument, an unknown command or option):
one ``error:`` line naming the command's help, exit code 2, no panel and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EVHUB = str(Path(sys.executable).with_name("evhub"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["cdrs", "list", "--limit", "abc"], "Invalid value for '--limit'"),
        (["tokens", "add"], "Missing argument 'uid'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["cdrs", "list", "--nope"], "No such option: --nope"),
    ],
)
def test_a_usage_error_is_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    env = dict(os.environ, EVHUB_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'kernel.db'}")
    done = subprocess.run([EVHUB, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert "--help`" in lines[0] and "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "kernel.db").exists(), "a usage error touches no database"


def test_help_and_a_bare_group_still_print_their_help(tmp_path: Path) -> None:
    for args in (["--help"], ["db"]):
        done = subprocess.run([EVHUB, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "Usage: evhub" in done.stdout, done
