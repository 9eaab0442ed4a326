"""What every simulated OCPI peer (:mod:`simulators.emsp`, :mod:`simulators.cpo`) puts on the wire alike: the
response envelope, the ``Authorization: Token`` header (base64 in 2.2.1, raw in 2.1.1) and the tokens a
received header may carry."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

from kernel.timeutil import utcnow

VERSION = "2.2.1"
VERSION_211 = "2.1.1"


def now_text() -> str:
    """The peer's timestamp for an envelope: the hub's clock (pinned in tests and the demo), to the second."""
    return utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")


def envelope(data: Any = None, code: int = 1000, message: str | None = None) -> dict[str, Any]:
    """An OCPI response body: ``status_code``, ``timestamp`` and, when given, ``data`` and ``status_message``."""
    body: dict[str, Any] = {"status_code": code, "timestamp": now_text()}
    if data is not None:
        body["data"] = data
    if message:
        body["status_message"] = message
    return body


def tokens_in(header: str | None, version: str = VERSION) -> set[str]:
    """The tokens a header carries: raw or base64 in 2.2.1, only raw in 2.1.1."""
    if not header or not header.lower().startswith("token "):
        return set()
    raw = header[6:].strip()
    found = {raw}
    if version == VERSION:
        with contextlib.suppress(Exception):
            found.add(base64.b64decode(raw, validate=True).decode().rstrip("\n"))
    return found


def auth_header(token: str, version: str = VERSION) -> str:
    """``Authorization`` for a request with ``token``: base64 in 2.2.1, raw in 2.1.1."""
    if version == VERSION_211:
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode()).decode()
