"""localstripe for the demo and the tests: a real fake Stripe server (the ``localstripe`` package from PyPI), started
as a child process on a loopback port.

The hub talks to it through the official ``stripe`` SDK exactly as to Stripe (``api_base`` is the only
difference). localstripe keeps its objects in memory and, by default, pickles them to a fixed file in /tmp on
every write; :func:`main` runs it with that disk copy turned off (each instance is independent, nothing is
written outside the process), then hands over to localstripe's own ``start``.

* :class:`LocalStripe` starts one (``python -m simulators.localstripe --port N``), waits until it answers, and
  stops it; ``url`` is its API base, ``js_url`` the Stripe.js stand-in it serves for hosted flows.
* Test cards (localstripe's): ``4242424242424242`` pays; ``4000000000000341`` attaches but every charge is
  declined; ``4000000000000002`` is declined when attached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time

import httpx

from kernel.ports import free_port

SECRET_KEY = "sk_test_evhub_localstripe"
PUBLISHABLE_KEY = "pk_test_evhub_localstripe"
CARD_OK = "4242424242424242"
CARD_DECLINED_ON_CHARGE = "4000000000000341"
CARD_DECLINED_ON_ATTACH = "4000000000000002"


class LocalStripe:
    """One localstripe process on ``127.0.0.1:port`` (a free port unless given)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def js_url(self) -> str:
        return f"{self.url}/js.stripe.com/v3/"

    def start(self, timeout: float = 30.0) -> LocalStripe:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulators.localstripe", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"localstripe exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/v1/customers", auth=(SECRET_KEY, ""), timeout=1.0)
                if r.status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"localstripe did not answer on port {self.port} within {timeout} s")

    def register_webhook(self, url: str, secret: str, webhook_id: str = "evhub") -> None:
        """Have localstripe POST its events to ``url``, signed with ``secret`` (its ``/_config`` endpoint)."""
        r = httpx.post(f"{self.url}/_config/webhooks/{webhook_id}", data={"url": url, "secret": secret})
        r.raise_for_status()

    def flush(self) -> None:
        """Forget every object (between tests)."""
        httpx.delete(f"{self.url}/_config/data").raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """Run localstripe in this process, in memory only."""
    import localstripe.resources as resources  # type: ignore[import-untyped]
    from localstripe.server import start  # type: ignore[import-untyped]

    resources.Store.dump_to_disk = lambda self: None  # no pickle in /tmp: each instance is its own
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args()
    sys.argv = [sys.argv[0], "--port", str(args.port), "--from-scratch"]
    asyncio.set_event_loop(asyncio.new_event_loop())
    start()


if __name__ == "__main__":
    main()
