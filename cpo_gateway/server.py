"""The OCPP websocket listener: upgrade checks (path, auth, subprotocol, TLS), connections, liveness.

``ws[s]://HOST:PORT/ocpp/{charge_point_id}`` with subprotocol ``ocpp1.6`` or ``ocpp2.0.1``. Refusals happen
at the HTTP upgrade, before anything is created: 404 unknown path or identity, 401 missing/wrong password,
403 security profile not met, 400 no supported subprotocol. Admission control: when this process's database
pool is exhausted, the database does not answer, or the password checks' thread pool and queue are full, the
upgrade is answered 503 with a Retry-After (jittered, so a storm comes back spread) at once, never a timeout;
so is a storm whose admitted connections already queue to be marked online (at most half the pool does that
at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from cpo_gateway.authorization import Authorizer
from cpo_gateway.charger_auth import (
    SUPPORTED,
    PasswordCache,
    choose_subprotocol,
    parse_basic,
    peer_common_name,
    server_ssl_context,
)
from cpo_gateway.charger_store import ChargerAuth, ChargerStore
from cpo_gateway.cluster import ChargerOffline, make_router
from cpo_gateway.connection import ChargerConnection
from cpo_gateway.dispatch import handlers_for
from cpo_gateway.events import ChargerRef
from cpo_gateway.meter_writer import MeterWriter
from cpo_gateway.session_store import SessionStore
from kernel import metrics
from kernel.coalesce import Coalescer
from kernel.db.engine import Database
from kernel.logs import RateLimitedLog, bind_permanently
from kernel.password_checks import CheckCache, PasswordChecksBusy, PasswordVerifier
from kernel.ports import port_error
from kernel.seams import Hooks, Services
from kernel.settings import Settings

log = logging.getLogger(__name__)
_REFUSALS = RateLimitedLog(log)

PATH_PREFIX = "/ocpp/"
DB_BUSY_RETRY_AFTER = 5
"""Seconds (before jitter) a charger refused because the database pool is exhausted or down waits."""
_DB_DOWN = (PoolTimeout, OperationalError, InterfaceError, DisconnectionError, OSError)
"""What a database that is down or out of connections raises (not a programming error: that stays a bug)."""


UPGRADE_BUDGET = 6.0
"""Seconds an upgrade may wait to be admitted (charger lookup, password check) before it is answered 503:
well inside websockets' 10 s opening-handshake timeout, so a queued charger always gets an HTTP answer."""


class Gate:
    """At most ``size`` holders at a time, counting who waits: the database work of opening connections (the
    upgrade's charger lookup and remembered checks, marking online) goes through one, so a storm queues here
    rather than exhausting the pool, and the upgrade answers 503 while too many already wait."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


class Gateway:
    """Everything one gateway process runs: listener, connections, the charger and session stores, the meter
    writer, authorizer, command routing."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        node_name: str,
        *,
        hooks: Hooks | None = None,
        services: Services | None = None,
    ) -> None:
        """``hooks`` (session, EVSE status) run in the stores' transactions; ``services.realtime_authorizer``
        is asked about unknown tokens (both are the hub's, read when used: see :mod:`kernel.seams`)."""
        self.settings = settings
        self.db = db
        self.node_name = node_name
        self.services = services if services is not None else Services()
        hooks = hooks if hooks is not None else Hooks()
        self.chargers = ChargerStore(db, node_name, hooks)
        self.sessions = SessionStore(
            db, hooks, late_data_grace=settings.late_data_grace, clock_skew=settings.clock_skew
        )
        self.meter_writer = MeterWriter(db)
        self.authorizer = Authorizer(db, self.services)
        self.connections: dict[str, ChargerConnection] = {}
        pool = settings.db_pool_size + settings.db_max_overflow
        self.opening = Gate(max(1, pool // 2))  # half the pool for opening connections; the rest for messages
        self.max_opening_waiting = max(8, 2 * pool)
        # a storm's database work, coalesced into few batched statements (see kernel.coalesce)
        self.lookups: Coalescer[str, tuple[ChargerAuth, ChargerRef] | None] = Coalescer(self._lookup_batch)
        self.onlines: Coalescer[ChargerRef, None] = Coalescer(self._online_batch)
        self.offlines: Coalescer[ChargerRef, None] = Coalescer(self._offline_batch)
        self.max_admitting = max(1000, 50 * pool)
        """Upgrades that may wait for their charger lookup before the next one is answered 503 at once."""
        self.chargers.max_booting = max(1000, 50 * pool)
        self.upgrade_budget = UPGRADE_BUDGET
        self.passwords = PasswordCache(
            CheckCache(
                PasswordVerifier(settings.password_workers, settings.password_queue, name="ocpp-argon2"),
                db,
                key=settings.password_cache_key,
                ttl=settings.password_cache_ttl,
                db_gate=self.opening,
            )
        )
        self.router = make_router(self)
        self.server: Server | None = None
        self.port: int | None = None
        self.tls = bool(settings.ocpp_tls_cert)
        self.offline_after = settings.heartbeat_interval * settings.ocpp_heartbeat_grace
        self.sweep_interval = max(1.0, min(30.0, settings.heartbeat_interval / 3))
        self._sweeper: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        metrics.watch_gateway(self)  # evhub_ocpp_connected_chargers counts self.connections at scrape

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        st = self.settings
        ssl_ctx = server_ssl_context(st.ocpp_tls_cert, st.ocpp_tls_key, st.ocpp_tls_ca) if self.tls else None
        self.meter_writer.start()
        await self.router.start()
        host = host if host is not None else st.ocpp_host
        port = port if port is not None else st.ocpp_port
        try:
            self.server = await self._listen(host, port, ssl_ctx)
        except OSError as exc:  # port in use, address not this machine's: one line naming the setting
            await self.router.stop()
            await self.meter_writer.stop()
            raise port_error(
                exc, host, port, host_var="EVHUB_OCPP_HOST", port_var="EVHUB_OCPP_PORT"
            ) from None
        self.port = next(iter(self.server.sockets)).getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="gateway-sweeper")
        log.info("OCPP listener on %s:%s (%s)", host, self.port, "wss" if self.tls else "ws")
        return self.port

    async def _listen(self, host: str, port: int, ssl_ctx: Any) -> Server:
        st = self.settings
        return await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            max_size=st.ocpp_max_frame_bytes,
            max_queue=4,
            ping_interval=st.ocpp_ping_interval or None,
            ping_timeout=st.ocpp_ping_timeout,
            close_timeout=5,
            ssl=ssl_ctx,
            server_header="evhub",
            compression=None,  # CPU over bandwidth: OCPP frames are small
            reuse_port=st.ocpp_workers > 1,  # the OCPP worker processes share the port (evhub.workers)
        )

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.server is not None:
            self.server.close(close_connections=False)
            for conn in list(self.connections.values()):
                with contextlib.suppress(Exception):
                    await conn.close(1001, "server shutting down")
            await self.server.wait_closed()
            self.server = None
        await self.router.stop()
        await self.meter_writer.stop()
        self.passwords.close()

    # -- upgrade --------------------------------------------------------------------------------------------

    @staticmethod
    def _refuse(status: HTTPStatus, reason: str, headers: dict[str, str] | None = None) -> Response:
        body = (reason + "\n").encode()
        hdrs = Headers({"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))})
        for k, v in (headers or {}).items():
            hdrs[k] = v
        return Response(status.value, status.phrase, hdrs, body)

    @classmethod
    def _busy(cls, reason: str, retry_after: int) -> Response:
        """503 with Retry-After: ``retry_after`` seconds (already jittered by the caller)."""
        return cls._refuse(HTTPStatus.SERVICE_UNAVAILABLE, reason, {"Retry-After": str(retry_after)})

    def _db_busy(self, identity: str, exc: BaseException | None) -> Response:
        if exc is not None:  # one line per interval, no traceback: during an outage every charger lands here
            _REFUSALS.warning(
                "database_unavailable",
                f"charger {identity} refused with 503: database unavailable ({type(exc).__name__})",
            )
        seconds = DB_BUSY_RETRY_AFTER + random.randint(0, DB_BUSY_RETRY_AFTER)
        return self._busy("the hub is busy or its database unavailable; retry later", seconds)

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """:meth:`_admit` within :attr:`upgrade_budget` seconds, else 503 with Retry-After: a charger queued
        behind a storm gets an answer before websockets' opening-handshake timeout closes it without one."""
        try:
            async with asyncio.timeout(self.upgrade_budget):
                return await self._admit(connection, request)
        except TimeoutError:
            _REFUSALS.warning(
                "upgrade_budget", f"upgrade refused with 503: not admitted in {self.upgrade_budget} s"
            )
            seconds = DB_BUSY_RETRY_AFTER + random.randint(0, DB_BUSY_RETRY_AFTER)
            return self._busy("the hub is busy admitting other chargers; retry later", seconds)

    async def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX) or len(path) <= len(PATH_PREFIX):
            return self._refuse(HTTPStatus.NOT_FOUND, "use /ocpp/{charge_point_id}")
        identity = unquote(path[len(PATH_PREFIX) :].strip("/"))
        if "/" in identity or "\x00" in identity or len(identity) > 48:  # no stored identity has a NUL
            return self._refuse(HTTPStatus.NOT_FOUND, "unknown charge point")
        if (
            self.db.pool_saturated()
            or self.opening.waiting >= self.max_opening_waiting
            or self.lookups.backlog >= self.max_admitting
        ):
            return self._db_busy(identity, None)
        try:
            loaded = await self.lookups.submit(identity)
        except _DB_DOWN as exc:
            return self._db_busy(identity, exc)
        if loaded is None:
            return self._refuse(HTTPStatus.NOT_FOUND, "unknown charge point")
        cp, ref = loaded
        tls = connection.transport.get_extra_info("sslcontext") is not None
        if cp.security_profile >= 2 and not tls:
            return self._refuse(
                HTTPStatus.FORBIDDEN, f"security profile {cp.security_profile} requires wss://"
            )
        if cp.security_profile >= 3:
            if peer_common_name(connection.transport) != identity:
                return self._refuse(HTTPStatus.FORBIDDEN, "client certificate required for this charge point")
        else:
            creds = parse_basic(request.headers.get("Authorization"))
            if creds is None or creds[0] != identity:
                return self._refuse(
                    HTTPStatus.UNAUTHORIZED,
                    "HTTP Basic auth required",
                    {"WWW-Authenticate": 'Basic realm="ocpp"'},
                )
            try:
                ok = await self.passwords.check(identity, cp.password_hash, creds[1])
            except PasswordChecksBusy as busy:
                return self._busy("password checks are saturated; retry later", busy.retry_after)
            except _DB_DOWN as exc:
                return self._db_busy(identity, exc)
            if not ok:
                return self._refuse(
                    HTTPStatus.UNAUTHORIZED, "wrong credentials", {"WWW-Authenticate": 'Basic realm="ocpp"'}
                )
        sub = choose_subprotocol(request.headers.get("Sec-WebSocket-Protocol"), ref.ocpp_version)
        if sub is None:
            return self._refuse(HTTPStatus.BAD_REQUEST, "offer subprotocol ocpp1.6 or ocpp2.0.1")
        connection.evhub_ref = ref  # type: ignore[attr-defined]
        connection.evhub_subprotocol = sub  # type: ignore[attr-defined]
        return None

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, subprotocols: Any) -> Any:
        return getattr(connection, "evhub_subprotocol", None)

    # -- connections ----------------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        ref = ws.evhub_ref  # type: ignore[attr-defined]
        version = SUPPORTED[ws.subprotocol or ""]
        bind_permanently(charger_id=ref.identity)  # every log line of this connection's task carries it
        conn = ChargerConnection(self, ws, ref, version, handlers_for(version))
        old = self.connections.get(ref.identity)
        self.connections[ref.identity] = conn
        if old is not None:
            old.replaced = True
            with contextlib.suppress(Exception):
                await old.close(1000, "replaced by a new connection")
        try:
            await self._go_online(ref)
            log.info("charger %s connected (OCPP %s)", ref.identity, version)
            await conn.run()
        except _DB_DOWN as exc:  # one line: during an outage every charger lands here
            log.warning(
                "charger %s: connection closed, database unavailable (%s)", ref.identity, type(exc).__name__
            )
            with contextlib.suppress(Exception):
                await ws.close(1011, "database unavailable; retry later")
        except Exception as exc:
            if not _is_closed(exc):
                log.exception("charger %s: connection failed", ref.identity)
        finally:
            conn.fail_pending()
            if self.connections.get(ref.identity) is conn:
                del self.connections[ref.identity]
                with contextlib.suppress(Exception):
                    await self.offlines.submit(ref)
            log.info("charger %s disconnected (%s)", ref.identity, ws.close_code)

    async def _go_online(self, ref: ChargerRef) -> None:
        """Mark the charger online and announce it to the cluster (coalesced with the others connecting)."""
        await self.onlines.submit(ref)

    async def _lookup_batch(self, identities: list[str]) -> list[tuple[ChargerAuth, ChargerRef] | None]:
        async with self.opening():
            return await self.chargers.load_chargers(identities)

    async def _online_batch(self, refs: list[ChargerRef]) -> list[None]:
        """Through :attr:`opening` (see :class:`Gate`): one UPDATE and a few NOTIFYs for the batch."""
        async with self.opening():
            await self.chargers.set_connections(refs, online=True)
            await self.router.announce_many([ref.identity for ref in refs])
        return [None] * len(refs)

    async def _offline_batch(self, refs: list[ChargerRef]) -> list[None]:
        await self.chargers.set_connections(refs, online=False)
        return [None] * len(refs)

    def drop_replaced(self, identity: str) -> None:
        """Another process now holds this charger: close our stale connection without marking it offline."""
        conn = self.connections.pop(identity, None)
        if conn is not None:
            conn.replaced = True
            task = asyncio.create_task(conn.close(1000, "replaced by a new connection"))
            self._bg.add(task)
            task.add_done_callback(self._bg.discard)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("liveness sweep failed")

    async def sweep(self) -> None:
        """Disconnect chargers silent for longer than heartbeat interval x grace; refresh last_seen."""
        now = time.monotonic()
        heard: list[int] = []
        for conn in list(self.connections.values()):
            if now - conn.last_heard > self.offline_after:
                log.warning("charger %s missed its heartbeats; disconnecting", conn.identity)
                await conn.close(4000, "missed heartbeats")
            elif conn.heard_since_sweep:
                conn.heard_since_sweep = False
                heard.append(conn.ref.id)
        await self.chargers.touch(heard)
        await self.chargers.mark_stale_offline(self.offline_after)

    # -- commands -------------------------------------------------------------------------------------------

    async def send(
        self, identity: str, action: str, payload: dict[str, Any], timeout: float | None = None
    ) -> Any:
        """Send a CALL to a charger wherever it is connected; returns its answer payload."""
        return await self.router.send(
            identity, action, payload, timeout or self.settings.ocpp_command_timeout
        )

    async def send_local(self, identity: str, action: str, payload: dict[str, Any], timeout: float) -> Any:
        conn = self.connections.get(identity)
        if conn is None:
            raise ChargerOffline(identity)
        return await conn.call(action, payload, timeout)

    def version_of(self, identity: str) -> str | None:
        conn = self.connections.get(identity)
        return conn.version if conn else None


def _is_closed(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionClosed)
