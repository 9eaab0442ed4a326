"""A simulated grid-load feed: a zone's load in percent over a day, posted to ``/api/grid/{zone}/load``.

The curve is a deterministic daily shape (night valley, evening peak) plus seeded noise, so the demo and tests
see the same prices every run. :func:`load_curve` is pure; :class:`GridFeed` posts samples over HTTP and
raises :class:`GridFeedError` (one line naming the URL and why) when the hub cannot be reached or refuses.
"""

from __future__ import annotations

import math
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import httpx

from kernel.timeutil import ensure_utc


def load_curve(
    start: datetime, step: timedelta, count: int, *, seed: int = 7
) -> Iterator[tuple[datetime, Decimal]]:
    """``count`` samples from ``start`` every ``step``: a daily curve (low ~20 % at 04:00 UTC, high ~90 % at
    18:00 UTC) with +-5 points of seeded noise, to one decimal."""
    rng = random.Random(seed)
    at = ensure_utc(start)
    for _ in range(count):
        hours = at.hour + at.minute / 60
        base = 55 + 35 * math.sin((hours - 11) / 24 * 2 * math.pi)
        value = max(0.0, min(100.0, base + rng.uniform(-5, 5)))
        yield at, Decimal(f"{value:.1f}")
        at += step


class GridFeedError(RuntimeError):
    """The hub could not be reached, or refused a sample; the message names the URL and the reason."""


def _network_reason(exc: httpx.TransportError) -> str:
    """Why a request never got an answer, in a few words (the innermost OS error says it best)."""
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"unknown host ({cause.strerror})"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _refusal(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = detail if isinstance(detail, str) else " ".join(response.text.split())[:200]
    hint = " (give a hub operator key with --api-key or EVHUB_API_KEY)" if response.status_code == 401 else ""
    return f"HTTP {response.status_code}: {text or response.reason_phrase}{hint}"


@dataclass
class GridFeed:
    """Posts load samples for one zone to a running hub."""

    base_url: str
    zone: str
    api_key: str | None = None  # a hub operator key (grid load is a hub-operator endpoint)
    sent: list[tuple[datetime, Decimal, list[dict]]] = field(default_factory=list)

    async def post(self, at: datetime, load: Decimal, client: httpx.AsyncClient | None = None) -> list[dict]:
        """Send one sample; returns the tariff versions the hub published because of it.

        Raises :class:`GridFeedError` when the hub cannot be reached or answers with an error."""
        own = client is None
        client = client or httpx.AsyncClient(timeout=10)
        url = f"{self.base_url.rstrip('/')}/api/grid/{self.zone}/load"
        try:
            try:
                response = await client.post(
                    url,
                    json={"load_percent": str(load), "timestamp": ensure_utc(at).isoformat()},
                    headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else {},
                )
            except httpx.TransportError as exc:
                raise GridFeedError(
                    f"cannot reach the hub at {self.base_url}: {_network_reason(exc)}"
                ) from None
            if response.is_error:
                raise GridFeedError(f"{url} refused the sample: {_refusal(response)}")
            try:
                published = response.json()["published"]
            except (ValueError, KeyError, TypeError):
                raise GridFeedError(f"{url} is not an evhub grid endpoint (unexpected answer)") from None
        finally:
            if own:
                await client.aclose()
        self.sent.append((at, load, published))
        return published

    async def replay(self, samples: list[tuple[datetime, Decimal]]) -> list[dict]:
        """Send a series in order; returns every published version."""
        out: list[dict] = []
        async with httpx.AsyncClient(timeout=10) as client:
            for at, load in samples:
                out.extend(await self.post(at, load, client))
        return out
