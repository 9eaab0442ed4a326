"""``evhub demo`` runs the whole money path on embedded SQLite and shows every step."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

EVHUB = str(Path(sys.executable).with_name("evhub"))


@pytest.mark.skipif(
    os.environ.get("EVHUB_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the demo runs on the embedded SQLite default; covered by the SQLite run",
)
async def test_demo_runs_the_whole_money_path(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVHUB_")}
    proc = await asyncio.create_subprocess_exec(
        EVHUB,
        "demo",
        "--workdir",
        str(tmp_path / "demo"),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    text = output.decode()
    assert proc.returncode == 0, text
    for step in (
        "1. The sample network",
        "2. Roaming partner",
        "3. Chargers charging",
        "4. Priced CDRs",
        "5. Delivered",
        "6. Settlement",
        "demo complete",
    ):
        assert step in text, f"missing {step!r} in:\n{text}"
    sessions = re.search(r"(\d+) sessions completed", text)
    assert sessions and int(sessions.group(1)) >= 9
    assert "registered through the OCPI 2.2.1 handshake" in text
    cdrs = re.search(r"eMSP DE\*EMS received (\d+) of (\d+) CDR", text)
    assert cdrs and cdrs.group(1) == cdrs.group(2) != "0", "every roaming CDR reaches the eMSP"
    mails = re.search(r"(\d+) receipt email\(s\) for (\d+) fleet session", text)
    assert mails and mails.group(1) == mails.group(2), "every fleet session gets its receipt"
    assert f"{sessions.group(1)} CDRs" in text and "0 rejected" in text  # every session priced and settled
    assert len(list((tmp_path / "demo" / "mail").glob("*.eml"))) == int(mails.group(1))
    assert list((tmp_path / "demo" / "settlement").glob("*/lines.csv"))
