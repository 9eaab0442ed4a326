"""Process assembly: one ``evhub serve`` process runs the OCPP listener, the HTTP app and the scheduler.

The HTTP app (FastAPI) serves ``/api`` (operators), ``/ocpi`` (roaming partners), ``/portal`` (fleet managers),
OpenAPI at ``/docs``, ``/health`` and Prometheus ``/metrics``. The stages plug in as
:class:`~kernel.components.Component` objects listed in :data:`evhub.wiring.COMPONENTS`, in the order of the
money path; they are installed by :func:`evhub.wiring.wire` before anything starts, started in order and
stopped in reverse on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from functools import partial
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from evhub.apiops import HEALTH_RESPONSES, METRICS_RESPONSES
from evhub.gcpolicy import GcPolicy
from evhub.wiring import COMPONENTS, load_components, wire
from evhub.workers import OcppWorkers
from kernel import __version__, sealed
from kernel import metrics as hub_metrics
from kernel.apiauth import authenticate
from kernel.apidocs import install_docs
from kernel.components import Component, Hub
from kernel.db.engine import Database
from kernel.db.migrate import ensure_schema, schema_state
from kernel.db.reach import check_reachable
from kernel.httpguard import HttpGuard
from kernel.httpserver import HttpServer
from kernel.logs import bind
from kernel.models.roaming import reseal_outgoing_tokens
from kernel.ports import bind_tcp
from kernel.settings import Settings

__all__ = ["COMPONENTS", "RunningHub", "create_app", "default_node_name", "load_components", "serve"]

log = logging.getLogger(__name__)


def default_node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def create_app(hub: Hub) -> FastAPI:
    """The HTTP app with the core routes; components add theirs in ``install``."""
    app = FastAPI(
        title="evhub",
        version=__version__,
        description="EV-charging roaming and settlement hub: operations API, OCPI 2.2.1 platform, fleet portal.",
        docs_url=None,  # served by kernel.apidocs with local assets (no CDN)
        redoc_url=None,
    )
    install_docs(app)
    app.state.hub = hub

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        started = loop.time()
        root_path = request.scope.get("root_path", "")
        response = await _handle(request, call_next, request_id)
        route = hub_metrics.route_template(app, request.scope, root_path)
        hub_metrics.http_request(request.method, route, response.status_code, loop.time() - started)
        response.headers.setdefault("X-Request-ID", request_id)
        return response

    async def _handle(
        request: Request, call_next: Callable[[Request], Awaitable[Response]], request_id: str
    ) -> Response:
        with bind(request_id=request_id):
            if request.url.path.startswith("/api/") and hub.settings.api_auth:
                who = await authenticate(hub.db, request.headers.get("authorization"))
                if who is None:
                    log.info(
                        "api request refused: missing or unknown API key",
                        extra={"fields": {"path": request.url.path}},
                    )
                    refused = JSONResponse(
                        {"detail": "missing or unknown API key: send Authorization: Bearer <key>"},
                        status_code=401,
                        headers={"WWW-Authenticate": "Bearer", "X-Request-ID": request_id},
                    )
                    return refused
                request.state.principal = who
            return await call_next(request)

    @app.get(
        "/health", tags=["ops"], summary="Liveness and readiness of this process", responses=HEALTH_RESPONSES
    )
    async def health() -> JSONResponse:
        checks: dict[str, Any] = {}
        ok = True
        try:
            async with hub.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            state = await schema_state(hub.db)
            checks["database"] = "ok"
            checks["schema"] = state.current
            ok = state.up_to_date
        except Exception as exc:  # reported, not raised: health must answer
            checks["database"] = f"error: {type(exc).__name__}"
            ok = False
        body = {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "node": hub.node_name,
            "components": sorted(hub.component_names),
            **checks,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", responses=METRICS_RESPONSES)
    async def metrics() -> Response:
        await hub_metrics.refresh_database_gauges(hub.db)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    from evhub.api import router as core_router

    app.include_router(core_router, prefix="/api")
    # Outermost, before authentication: body limit, NUL refusal, bad input and an unreachable database answered
    # 4xx/503 in each surface's terms, never 500 (kernel/httpguard.py; issue 15 item 5).
    app.add_middleware(HttpGuard, max_body_bytes=hub.settings.http_max_body_bytes)
    return app


class RunningHub:
    """A hub assembled in this process; ``await start()``, then ``await stop()``."""

    def __init__(
        self, settings: Settings, components: Sequence[Component] | None = None, *, role: str = "hub"
    ) -> None:
        """``role="hub"`` runs everything; ``"ocpp-worker"`` (see :mod:`evhub.workers`) installs every component
        but starts only the gateway: no HTTP app, no scheduled jobs."""
        self.settings = settings
        self.role = role
        self.db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
        )
        self.hub = Hub(settings=settings, db=self.db, node_name=settings.node_name or default_node_name())
        self.components = list(components) if components is not None else load_components()
        self._http_server: HttpServer | None = None
        self._http_socket: socket.socket | None = None
        self._started: list[Component] = []
        self._up = False  # start() completed: stop() reports "evhub stopped"

    @property
    def http_port(self) -> int:
        return int(self.hub.endpoints["http"].rsplit(":", 1)[1])

    async def start(self) -> None:
        worker = self.role == "ocpp-worker"
        may_upgrade = not worker and (self.settings.is_default_sqlite or self.settings.auto_migrate)
        await check_reachable(self.db)
        await ensure_schema(self.db, may_upgrade=may_upgrade)
        sealed.configure(
            self.settings.secrets_key
        )  # the keys of the partners' outgoing tokens (kernel/sealed.py)
        if not worker:
            sealed.warn_if_development()
            async with self.db.session() as db_session:  # plain or old-key tokens sealed with the first key
                if resealed := await reseal_outgoing_tokens(db_session):
                    log.info("outgoing partner tokens sealed anew", extra={"fields": {"partners": resealed}})
            # Bound before anything starts: a port in use is one clear line, with nothing to undo.
            self._http_socket = bind_tcp(
                self.settings.http_host,
                self.settings.http_port,
                host_var="EVHUB_HTTP_HOST",
                port_var="EVHUB_HTTP_PORT",
            )
            self.hub.scheduler = AsyncIOScheduler(timezone=UTC)
            self.hub.app = create_app(self.hub)
        wire(self.hub, self.components)
        if self.hub.scheduler is not None:
            self.hub.scheduler.start()
        for component in self.components:
            if worker and component.name != "gateway":
                continue
            await component.start(self.hub)
            self._started.append(component)
        if worker:
            self._up = True
            return
        assert self.hub.app is not None and self._http_socket is not None, "bound and created above"
        # The hub handles SIGTERM for every part at once; the server leaves signals alone.
        self._http_server = HttpServer(self.hub.app, sock=self._http_socket)
        await self._http_server.start()
        self.hub.endpoints["http"] = self._http_server.url
        self._up = True
        log.info(
            "evhub started",
            extra={"fields": {"node": self.hub.node_name, **self.hub.endpoints}},
        )

    async def _stop_scheduler(self, timeout: float = 10.0) -> None:
        """Stop scheduling and let the jobs that are running finish their cancellation (their transactions roll
        back) before the components and the database go away. APScheduler's own shutdown only cancels them."""
        scheduler = self.hub.scheduler
        if scheduler is None or not scheduler.running:
            return
        running = [f for ex in scheduler._executors.values() for f in getattr(ex, "_pending_futures", ())]
        scheduler.shutdown(wait=False)
        if running:
            await asyncio.wait(running, timeout=timeout)

    async def stop(self) -> None:
        if self._http_server is not None:
            await self._http_server.stop(timeout=None)  # in-flight requests finish, however long they take
            self._http_server = None
        if self._http_socket is not None:
            self._http_socket.close()
            self._http_socket = None
        await self._stop_scheduler()
        for component in reversed(self._started):
            try:
                await component.stop()
            except Exception:
                log.exception("component failed to stop", extra={"fields": {"component": component.name}})
        self._started.clear()
        await self.db.dispose()
        if self._up:
            self._up = False
            log.info("evhub stopped", extra={"fields": {"node": self.hub.node_name}})


async def serve(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    """Run the hub until SIGTERM/SIGINT (or ``stop_event``), then stop gracefully."""
    stop_event = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_event.set)
    running = RunningHub(settings)
    try:
        await running.start()
    except BaseException:
        # Whatever did start (a listener, the scheduler) stops before the error is shown.
        await running.stop()
        raise
    gc_policy = GcPolicy()
    gc_policy.start()
    workers = None
    try:
        if settings.ocpp_workers > 1:
            gateway = running.hub.services.gateway
            assert gateway is not None and gateway.port is not None, "the gateway component started"
            worker_hub = partial(RunningHub, role="ocpp-worker")  # what each worker process runs
            workers = OcppWorkers(settings, gateway.port, running.hub.node_name, worker_hub)
            await workers.start()
        await stop_event.wait()
    finally:
        log.info("shutting down", extra={"fields": {"node": running.hub.node_name}})
        if workers is not None:
            await workers.stop()
        await gc_policy.stop()
        await running.stop()
