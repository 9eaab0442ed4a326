"""Charger authentication at the websocket upgrade (OCPP security profiles 1-3).

* Profile 1: HTTP Basic, username = charger identity, password checked against the charger's Argon2 hash.
* Profile 2: the same, and the connection must be TLS (wss://).
* Profile 3: TLS with a client certificate issued by the configured CA whose subject CN is the identity.

Argon2 is deliberately slow, so it runs in a bounded thread pool off the event loop, and a successful check is
remembered for every ``evhub serve`` process (an HMAC under ``EVHUB_PASSWORD_CACHE_KEY``, see
:mod:`kernel.password_checks`): a reconnect storm of thousands of chargers costs at most one Argon2 check per
charger, and past the pool's capacity the upgrade is refused with 503 and Retry-After instead of timing out.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from dataclasses import dataclass
from typing import Any

from kernel.password_checks import CheckCache, PasswordVerifier

SUPPORTED = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}

BLOCKED_PREFIX = "!"
"""A blocked charger's stored hash starts with this (``evhub chargers block``): no password matches it, and
unblocking only strips it, so the charger keeps its password (the ``/etc/shadow`` convention)."""


def is_blocked(password_hash: str | None) -> bool:
    return password_hash is not None and password_hash.startswith(BLOCKED_PREFIX)


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def choose_subprotocol(offered: str | None, preferred: str) -> str | None:
    """The subprotocol to speak: the charger's registered version if offered, else another supported one."""
    names = [p.strip() for p in (offered or "").split(",") if p.strip()]
    want = "ocpp" + preferred
    if want in names:
        return want
    for name in names:
        if name in SUPPORTED:
            return name
    return None


class PasswordCache:
    """The gateway's password check: blocked chargers refused, then :class:`kernel.password_checks.CheckCache`
    (remembered successes shared by every process, Argon2 in a bounded thread pool, never on the event loop;
    :class:`~kernel.password_checks.PasswordChecksBusy` when that pool is saturated)."""

    def __init__(self, checks: CheckCache | None = None) -> None:
        self.checks = checks if checks is not None else CheckCache(PasswordVerifier(name="ocpp-argon2"))

    async def check(self, identity: str, password_hash: str | None, password: str) -> bool:
        if not password_hash or is_blocked(password_hash):
            return False
        return await self.checks.check(f"charger:{identity}", password_hash, password)

    def close(self) -> None:
        self.checks.verifier.close()


def peer_common_name(transport: Any) -> str | None:
    """CN of the verified client certificate, if any."""
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def server_ssl_context(cert: str, key: str, ca: str = "") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL  # profile 3 chargers present one; profile 2 chargers need not
    return ctx
