"""The destinations the hub delivers to, each able to fail on command, each recording what it accepted and when.

* :class:`Partner`: an OCPI 2.2.1 eMSP (:class:`simulators.emsp.EmspSimulator`, registered through the real
  credentials handshake) behind a recorder that notes every CDR POST (its id, the answer, the time). Modes:
  ``healthy``, ``down`` (its listener closed: connections refused), ``error`` (HTTP 500), ``slow`` (answers
  after 30 s), ``notfound`` (HTTP 404 pages).
* :class:`MailSink`: an aiosmtpd server recording each accepted message's Message-ID. Modes: ``healthy``,
  ``down`` (listener closed), ``451`` (every DATA answered ``451 4.3.0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from email import message_from_bytes

from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.types import Message, Receive, Scope, Send

from kernel.httpserver import HttpServer
from kernel.ports import free_port
from simulators.emsp import EmspSimulator

SLOW_S = 30.0


@dataclass
class Delivery:
    """One CDR push as the partner saw it."""

    object_id: str
    status: int
    at: float  # time.time() when the request arrived


class Partner:
    def __init__(self, name: str, country_code: str, party_id: str, *, slow_s: float = SLOW_S) -> None:
        self.sim = EmspSimulator(country_code=country_code, party_id=party_id, name=name)
        self.name = name
        self.slow_s = slow_s
        self.port = free_port()
        self.sim.url, self.sim.port = f"http://127.0.0.1:{self.port}", self.port
        self.deliveries: list[Delivery] = []
        self.mode = "healthy"
        self._server: HttpServer | None = None

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/cdrs"):
            await self.sim.app(scope, receive, send)
            return
        at, chunks = time.time(), list[bytes]()

        replayed = [False]

        async def replay() -> Message:
            if replayed[0]:
                return await receive()
            replayed[0] = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        try:
            object_id = str(json.loads(b"".join(chunks)).get("id"))
        except (ValueError, AttributeError):
            object_id = "?"
        status = [0]

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.sim.app(scope, replay, watch)
        finally:
            self.deliveries.append(Delivery(object_id, status[0], at))

    async def start(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:  # a function: uvicorn's ASGI 3
            await self._app(scope, receive, send)

        self._server = HttpServer(app, host="127.0.0.1", port=self.port)
        await self._server.start()

    async def set_mode(self, mode: str) -> None:
        if mode == "down":
            if self._server is not None:
                await self._server.stop()
                self._server = None
        elif self._server is None:
            await self.start()
        if mode == "error":
            self.sim.misbehave("error", status=500, paths=("/cdrs",))
        elif mode == "notfound":
            self.sim.misbehave("error", status=404, paths=("/cdrs",))
        elif mode == "slow":
            self.sim.misbehave("slow", delay=self.slow_s, paths=("/cdrs",))
        else:
            self.sim.behave()
        self.mode = mode

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    def accepted(self) -> dict[str, list[float]]:
        """Object id -> the arrival times of its pushes answered 2xx."""
        out: dict[str, list[float]] = {}
        for d in self.deliveries:
            if 200 <= d.status < 300:
                out.setdefault(d.object_id, []).append(d.at)
        return out


@dataclass
class _Handler:
    sink: MailSink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.mode == "451":
            self.sink.refused += 1
            return "451 4.3.0 Try again later"
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        msg_id = str(message_from_bytes(raw).get("Message-ID", "")).strip()
        self.sink.received.setdefault(msg_id, []).append(time.time())
        return "250 OK"


@dataclass
class MailSink:
    port: int = field(default_factory=free_port)
    mode: str = "healthy"
    received: dict[str, list[float]] = field(default_factory=dict)  # Message-ID -> arrival times
    refused: int = 0
    _server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: SMTP(handler, hostname="faults.local"), host="127.0.0.1", port=self.port
        )

    async def set_mode(self, mode: str) -> None:
        if mode == "down":
            await self.stop()
        elif self._server is None:
            await self.start()
        self.mode = mode

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
