"""Hostile input at length (issue 15 item 5): the suite's schemathesis runs over ``/ocpi`` and ``/api`` and its
OCPP-J frame fuzzer, with many more examples than CI's short run, as one pytest process.

The three test modules are the same CI runs (``tests/ocpi/test_ocpi_schema.py``, ``tests/core/test_api_schema.py``,
``tests/gateway/test_frame_fuzz.py``); their size comes from ``EVHUB_SCHEMATHESIS_EXAMPLES`` (examples per
operation and generation mode) and ``EVHUB_FUZZ_EXAMPLES`` (frames per OCPP version). Each fails on any HTTP 5xx,
any answer that is not a well-formed CALLRESULT/CALLERROR, or any traceback logged, so "passed" means 0 server
errors. They run on a SQLite file of their own (the test suite's default), not on the fault suite's cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = (
    "tests/ocpi/test_ocpi_schema.py",
    "tests/core/test_api_schema.py",
    "tests/gateway/test_frame_fuzz.py",
)


@dataclass
class HostileResult:
    passed: int
    failed: int
    seconds: float
    returncode: int
    summary: str  # pytest's last lines: the failures' names, or the count passed

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.passed > 0


def _count(word: str, text: str) -> int:
    found = re.findall(rf"(\d+) {word}", text)
    return int(found[-1]) if found else 0


def run_hostile(schema_examples: int, fuzz_examples: int, timeout_s: float) -> HostileResult:
    """Run the three modules with these sizes (one process, no xdist, no random order); never raises."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVHUB_")}
    env |= {"EVHUB_SCHEMATHESIS_EXAMPLES": str(schema_examples), "EVHUB_FUZZ_EXAMPLES": str(fuzz_examples)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        *MODULES,
        "-q",
        "-n",
        "0",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        out, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        out, code = out + f"\nTIMED OUT after {timeout_s:g} s", 124
    tail = "\n".join(line for line in out.splitlines()[-12:] if line.strip())
    return HostileResult(_count("passed", out), _count("failed", out), time.monotonic() - started, code, tail)
