"""The fault suite's short version (issue 15 item 6): ``python -m faults --short`` end to end.

A throwaway PostgreSQL cluster, ``evhub serve``, 6 chargers, two OCPI partners and an SMTP sink; one round of each
fault (kill -9, partner A down / 500 / slow / 404, PostgreSQL stopped, SMTP down then 451). It passes only when
nothing the chargers had acknowledged is lost or duplicated, every finished session has exactly one CDR, every CDR
reached its partner and every receipt its driver, and partner B's p95 held. Independent of
EVHUB_TEST_DATABASE_URL (it brings its own cluster); on its own xdist group (it is heavy: several processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faults.cluster import PG_BIN
from faults.run import bound_s, short_plan

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.xdist_group("faults"),
    pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason=f"PostgreSQL binaries not found in {PG_BIN}"),
]


def test_short_fault_suite_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVHUB_")}
    # Every phase of the run has its own bound; past their sum it hangs (a loaded box only makes it slower:
    # about a minute on a quiet one). On a timeout the run's own timeline says where it was.
    try:
        done = subprocess.run(
            [sys.executable, "-m", "faults", "--short", "--json", str(out), "--workdir", str(tmp_path / "work")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=bound_s(short_plan()) + 60,
        )  # fmt: skip
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the short fault suite outlived its phases' bounds; it printed:\n{_text(hung.stdout)}"
                    f"\n{_text(hung.stderr)[-4000:]}")  # fmt: skip
    printout = done.stdout + done.stderr[-4000:]
    assert done.returncode == 0, printout
    figures = json.loads(out.read_text())
    assert figures["problems"] == [], printout
    lines = {line["what"]: line for line in figures["lines"]}
    assert len(lines) == 6
    for what, line in lines.items():
        assert line["expected"] > 0, f"{what}: nothing was counted\n{printout}"
        assert line["lost"] == 0 and line["duplicated"] == 0, f"{what}\n{printout}"
    assert "RESULT: OK" in done.stdout
    assert "kill -9: 1" in done.stdout  # the kill round ran


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")
