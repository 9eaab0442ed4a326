"""``evhub serve`` as a real process on the fault suite's cluster: started, killed with SIGKILL, started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

EVHUB = str(Path(sys.executable).with_name("evhub"))
SECRETS_KEY = "faults-secrets-key-0123456789"
CACHE_KEY = "faults-password-cache-key-0123"


START_TIMEOUT_S = 120.0  # ports open within this, or the start failed


class Hub:
    """The hub's process; ``env`` adds to the settings (loopback ports, the cluster, the SMTP sink)."""

    def __init__(self, database_url: str, ocpp_port: int, http_port: int, smtp_url: str, log: Path) -> None:
        self.ocpp_port, self.http_port, self.log = ocpp_port, http_port, log
        self.env = {
            **os.environ,
            "EVHUB_DATABASE_URL": database_url,
            "EVHUB_OCPP_HOST": "127.0.0.1",
            "EVHUB_OCPP_PORT": str(ocpp_port),
            "EVHUB_HTTP_HOST": "127.0.0.1",
            "EVHUB_HTTP_PORT": str(http_port),
            "EVHUB_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
            "EVHUB_SMTP_URL": smtp_url,
            "EVHUB_SECRETS_KEY": SECRETS_KEY,
            "EVHUB_PASSWORD_CACHE_KEY": CACHE_KEY,
            "EVHUB_AUTO_MIGRATE": "1",
            "EVHUB_LOG_LEVEL": "WARNING",
            "EVHUB_OCPP_PING_INTERVAL": "0",
            "EVHUB_HEARTBEAT_INTERVAL": "3600",
            "EVHUB_OCPP_RATE_LIMIT": "200",
            "EVHUB_OCPP_RATE_BURST": "2000",
            "EVHUB_CLOCK_SKEW": str(7 * 24 * 3600),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self, timeout: float = START_TIMEOUT_S) -> float:
        """Start and wait until both ports answer; returns the seconds it took."""
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([EVHUB, "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"evhub serve exited with {self.proc.returncode}; see {self.log}")
            if _listening(self.ocpp_port) and _listening(self.http_port):
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise RuntimeError(f"evhub serve did not open its ports in {timeout:.0f} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, whatever was in flight is cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False
