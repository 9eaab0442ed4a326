"""Command routing across gateway processes.

On PostgreSQL every gateway process LISTENs on one channel (``evhub_gateway``). A command for a charger held
by another process is NOTIFYed to that process (``charge_points.connected_node`` says which), which sends it to
the charger and NOTIFYs the answer back. When a charger connects, its new process announces it, and a process
still holding an old connection to it closes that one. On SQLite (one process) everything is local.

The LISTEN connection is supervised: when it is lost (server restart, ``pg_terminate_backend``, a failover, a
dead TCP link found by the periodic health check) the process reconnects with exponential backoff and jitter
and LISTENs again. NOTIFYs go out through the ordinary connection pool, so sending never depends on the
listener. What was NOTIFYed while a process was deaf is lost: commands routed to it in that window time out
(504); after reconnecting it closes its local connections to chargers the database now places elsewhere (the
announcements it may have missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from sqlalchemy import select, text

from cpo_gateway.framing import CallErrorReply, OcppError
from kernel.jsonutil import dumps_compact
from kernel.models import ChargePoint

if TYPE_CHECKING:
    from cpo_gateway.connection import ChargerConnection
    from kernel.db.engine import Database

log = logging.getLogger(__name__)

CHANNEL = "evhub_gateway"
ANNOUNCE_CHUNK_CHARS = 7000
"""A batch announcement is split into NOTIFYs of about this many characters (PostgreSQL's payload limit is 8000)."""


class ChargerOffline(Exception):
    """The charger is not connected to any gateway process."""


class GatewayProcess(Protocol):
    """What the router uses of the gateway process it routes for (:class:`cpo_gateway.server.Gateway`)."""

    @property
    def db(self) -> Database: ...
    @property
    def node_name(self) -> str: ...
    @property
    def connections(self) -> Mapping[str, ChargerConnection]: ...

    def drop_replaced(self, identity: str) -> None:
        """Close the local connection to a charger another process now holds (without marking it offline)."""

    async def send_local(self, identity: str, action: str, payload: dict[str, Any], timeout: float) -> Any:
        """Send a CALL to a charger connected to this process; :class:`ChargerOffline` if it is not."""


class LocalRouter:
    """One process (SQLite): every charger is local."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gw = gateway

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def announce(self, identity: str) -> None:
        return None

    async def announce_many(self, identities: list[str]) -> None:
        return None

    async def send(self, identity: str, action: str, payload: dict[str, Any], timeout: float) -> Any:
        return await self.gw.send_local(identity, action, payload, timeout)


class PgRouter(LocalRouter):
    """LISTEN/NOTIFY router: one supervised asyncpg LISTEN connection per process; NOTIFY through the pool."""

    backoff_initial = 0.5
    backoff_max = 30.0
    health_interval = 15.0
    """Seconds between health checks of an idle LISTEN connection (finds links that died silently)."""

    def __init__(self, gateway: GatewayProcess) -> None:
        super().__init__(gateway)
        self.dsn = gateway.db.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.conn: Any = None
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.listening = asyncio.Event()
        self.reconnects = 0
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._listen()
        self._supervisor = asyncio.create_task(self._supervise(), name="gateway-cluster-listener")

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            conn.add_termination_listener(self._on_terminated)
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self.conn = conn
        self._lost.clear()
        self.listening.set()

    def _on_terminated(self, conn: Any) -> None:
        if conn is self.conn:
            self._lost.set()

    async def _healthy(self) -> bool:
        conn = self.conn
        if conn is None or conn.is_closed():
            return False
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), 5)
            return True
        except Exception:
            return False

    async def _supervise(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self.health_interval)
            except TimeoutError:
                if await self._healthy():
                    continue
            lost_at = time.time()
            self.listening.clear()
            old, self.conn = self.conn, None
            if old is not None:
                old.terminate()
            log.warning("gateway cluster: LISTEN connection lost; reconnecting")
            delay = self.backoff_initial
            while True:
                try:
                    await self._listen()
                    break
                except Exception as exc:
                    wait = delay * random.uniform(0.5, 1.0)
                    log.warning("gateway cluster: reconnect failed (%s); next try in %.1f s", exc, wait)
                    await asyncio.sleep(wait)
                    delay = min(delay * 2, self.backoff_max)
            self.reconnects += 1
            log.info("gateway cluster: listening again after %.1f s", time.time() - lost_at)
            try:
                await self._reconcile(lost_at)
            except Exception:
                log.exception("gateway cluster: reconciling connections after a reconnect failed")

    async def _reconcile(self, lost_at: float) -> None:
        """Close local connections to chargers that connected to another process while we were deaf."""
        older = [c.identity for c in list(self.gw.connections.values()) if c.connected_at < lost_at]
        if not older:
            return
        async with self.gw.db.session() as db_session:
            rows = (
                await db_session.execute(
                    select(ChargePoint.identity, ChargePoint.connected_node).where(
                        ChargePoint.identity.in_(older)
                    )
                )
            ).all()
        for identity, node in rows:
            if node and node != self.gw.node_name:
                self.gw.drop_replaced(identity)

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        for task in list(self.tasks):
            task.cancel()
        conn, self.conn = self.conn, None
        self.listening.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)

    async def _notify(self, message: dict[str, Any]) -> None:
        payload = dumps_compact(message)
        if len(payload) > 7900:
            raise OcppError("FormatViolation", "command too large to route to another gateway process")
        async with self.gw.db.session() as db_session:
            await db_session.execute(
                text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
            )

    async def announce(self, identity: str) -> None:
        await self._notify({"t": "conn", "from": self.gw.node_name, "identity": identity})

    async def announce_many(self, identities: list[str]) -> None:
        """:meth:`announce` for a batch of chargers (a reconnect storm): a few NOTIFYs in one transaction."""
        chunks: list[list[str]] = [[]]
        size = 0
        for identity in identities:
            if size + len(identity) > ANNOUNCE_CHUNK_CHARS and chunks[-1]:
                chunks.append([])
                size = 0
            chunks[-1].append(identity)
            size += len(identity) + 3
        me = self.gw.node_name
        async with self.gw.db.session() as db_session:
            for chunk in chunks:
                payload = dumps_compact({"t": "conns", "from": me, "ids": chunk})
                await db_session.execute(
                    text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
                )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        me = self.gw.node_name
        kind = msg.get("t")
        if kind == "conn" and msg.get("from") != me:
            self.gw.drop_replaced(msg["identity"])
        elif kind == "conns" and msg.get("from") != me:
            for identity in msg.get("ids", ()):
                self.gw.drop_replaced(identity)
        elif kind == "cmd" and msg.get("to") == me:
            self._spawn(self._execute(msg))
        elif kind == "res" and msg.get("to") == me:
            fut = self.waiting.get(msg.get("id", ""))
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def _execute(self, msg: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"t": "res", "to": msg["from"], "id": msg["id"]}
        try:
            reply["result"] = await self.gw.send_local(
                msg["identity"], msg["action"], msg["payload"], msg["timeout"]
            )
            reply["ok"] = True
        except ChargerOffline:
            reply.update(ok=False, kind="offline")
        except TimeoutError:
            reply.update(ok=False, kind="timeout")
        except CallErrorReply as exc:
            reply.update(
                ok=False, kind="callerror", code=exc.code, description=exc.description, details=exc.details
            )
        except OcppError as exc:
            reply.update(ok=False, kind="invalid", code=exc.code, description=exc.description)
        except Exception as exc:
            reply.update(ok=False, kind="error", description=str(exc))
        await self._notify(reply)

    async def send(self, identity: str, action: str, payload: dict[str, Any], timeout: float) -> Any:
        if identity in self.gw.connections:
            return await self.gw.send_local(identity, action, payload, timeout)
        async with self.gw.db.session() as db_session:
            row = (
                await db_session.execute(
                    select(ChargePoint.status, ChargePoint.connected_node).where(
                        ChargePoint.identity == identity
                    )
                )
            ).first()
        if (
            row is None
            or row.status != "online"
            or not row.connected_node
            or row.connected_node == self.gw.node_name
        ):
            raise ChargerOffline(identity)
        req = str(uuid.uuid4())
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[req] = fut
        try:
            await self._notify(
                {
                    "t": "cmd",
                    "to": row.connected_node,
                    "from": self.gw.node_name,
                    "id": req,
                    "identity": identity,
                    "action": action,
                    "payload": payload,
                    "timeout": timeout,
                }
            )
            try:
                reply = await asyncio.wait_for(fut, timeout + 2)
            except TimeoutError:
                raise TimeoutError(f"no answer from gateway process {row.connected_node}") from None
        finally:
            self.waiting.pop(req, None)
        if reply.get("ok"):
            return reply.get("result")
        kind = reply.get("kind")
        if kind == "offline":
            raise ChargerOffline(identity)
        if kind == "timeout":
            raise TimeoutError(f"charger {identity} did not answer")
        if kind == "callerror":
            raise CallErrorReply(reply.get("code", ""), reply.get("description", ""), reply.get("details"))
        if kind == "invalid":
            raise OcppError(reply.get("code", "FormatViolation"), reply.get("description", ""))
        raise RuntimeError(reply.get("description", "remote gateway error"))


def make_router(gateway: GatewayProcess) -> LocalRouter:
    return LocalRouter(gateway) if gateway.db.is_sqlite else PgRouter(gateway)
