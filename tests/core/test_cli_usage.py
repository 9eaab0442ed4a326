"""Usage errors of the console script (an unparsable value, a missing argument, an unknown command or option):
one ``error:`` line naming the command's help, exit code 2, no panel and no traceback.

The first case runs the installed ``evhub`` script as a real process (the entry point, its exit code and its
stderr); the others call the same entry point, :func:`evhub.cli.main`, in this process, as the script would
(``sys.argv``, a script's ``__main__``, the environment and working folder), which saves a Python start-up and
the hub's imports per case.
"""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

EVHUB = str(Path(sys.executable).with_name("evhub"))


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def _in_process(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Done:
    """``evhub ARGS`` through the console script's function, in this process."""
    from evhub.cli import main

    monkeypatch.setattr(sys, "argv", [EVHUB, *args])
    # click names the program after a script's __main__ (no __package__), not pytest's ("python -m pytest")
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    code = exit_.value.code
    return Done(code if isinstance(code, int) else 1, out.out, out.err)


def _evhub(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    real_process: bool,
) -> Done:
    monkeypatch.setenv("EVHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'kernel.db'}")
    monkeypatch.chdir(tmp_path)
    if not real_process:
        return _in_process(args, monkeypatch, capsys)
    done = subprocess.run([EVHUB, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    return Done(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("args", "expected", "real_process"),
    [
        (["cdrs", "list", "--limit", "abc"], "Invalid value for '--limit'", True),
        (["tokens", "add"], "Missing argument 'uid'", False),
        (["nosuch"], "No such command 'nosuch'", False),
        (["cdrs", "list", "--nope"], "No such option: --nope", False),
    ],
)
def test_a_usage_error_is_one_line(
    args: list[str],
    expected: str,
    real_process: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = _evhub(args, tmp_path, monkeypatch, capsys, real_process=real_process)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert "--help`" in lines[0] and "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "kernel.db").exists(), "a usage error touches no database"


def test_help_and_a_bare_group_still_print_their_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (["--help"], ["db"]):
        done = _evhub(args, tmp_path, monkeypatch, capsys, real_process=False)
        assert done.returncode == 0 and "Usage: evhub" in done.stdout, done
