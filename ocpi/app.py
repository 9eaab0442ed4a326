"""The OCPI HTTP app, mounted by the component under ``/ocpi`` (its own error handlers answer envelopes).

Paths: ``/ocpi/versions``, ``/ocpi/2.2.1`` (details), ``/ocpi/2.2.1/credentials``,
``/ocpi/cpo/2.2.1/{locations,sessions,cdrs,tariffs,tokens,commands,hubclientinfo,chargingprofiles}``; OCPI 2.1.1:
``/ocpi/2.1.1`` (details), ``/ocpi/2.1.1/credentials``, ``/ocpi/cpo/2.1.1/{locations,sessions,cdrs,tariffs,
tokens,commands}`` (:mod:`ocpi.modules.v211`). The hub's hosted eMSPs, for external CPOs: ``/ocpi/emsp/2.2.1/tokens``
and ``/ocpi/emsp/2.1.1/tokens`` (Sender: list, real-time authorization; :mod:`ocpi.modules.tokens_sender`), and
``/ocpi/emsp/2.2.1/cdrs`` (Receiver: the CDRs the external CPOs post; :mod:`ocpi.modules.cdrs_receiver`).

The platform publishes its own OpenAPI document at ``/ocpi/openapi.json`` (pages at ``/ocpi/docs`` and
``/ocpi/redoc``), with the OCPI ``Authorization: Token <token>`` scheme declared on every route
(:data:`ocpi_token_scheme`; the check itself is :func:`ocpi.partner_auth.partner_for_header`, in the routes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import APIKeyHeader

from kernel.apidocs import install_docs
from ocpi import credentials, versions
from ocpi.envelope import install_error_handlers
from ocpi.modules import (
    cdrs,
    cdrs_receiver,
    chargingprofiles,
    commands,
    hubclientinfo,
    locations,
    sessions,
    tariffs,
    tokens,
    tokens_sender,
)
from ocpi.modules.v211 import cdrs as cdrs_211
from ocpi.modules.v211 import commands as commands_211
from ocpi.modules.v211 import locations as locations_211
from ocpi.modules.v211 import sessions as sessions_211
from ocpi.modules.v211 import tariffs as tariffs_211
from ocpi.modules.v211 import tokens as tokens_211
from ocpi.platform import VERSION, VERSION_211, OcpiPlatform
from ocpi.routing import CORRELATION_ID, REQUEST_ID, new_request_id

MODULE_ROUTERS = {
    "locations": locations.router,
    "sessions": sessions.router,
    "cdrs": cdrs.router,
    "tariffs": tariffs.router,
    "tokens": tokens.router,
    "commands": commands.router,
    "hubclientinfo": hubclientinfo.router,
    "chargingprofiles": chargingprofiles.router,
}
MODULE_ROUTERS_211 = {
    "locations": locations_211.router,
    "sessions": sessions_211.router,
    "cdrs": cdrs_211.router,
    "tariffs": tariffs_211.router,
    "tokens": tokens_211.router,
    "commands": commands_211.router,
}


ocpi_token_scheme = APIKeyHeader(
    name="Authorization",
    scheme_name="OcpiToken",
    description="OCPI credentials token: `Token <base64 of the token>` in 2.2.1, `Token <token>` in 2.1.1 "
    "(token A only for credentials during registration; the partner's token C afterwards)",
    auto_error=False,  # the routes answer a missing or unknown token with an OCPI status
)
TOKEN = [Depends(ocpi_token_scheme)]


def create_ocpi_app(platform: OcpiPlatform) -> FastAPI:
    app = FastAPI(
        title="evhub OCPI 2.2.1 and 2.1.1",
        description="The hub's OCPI 2.2.1 and 2.1.1 platform for eMSPs: every answer is an OCPI envelope "
        "(`data`, `status_code`, `status_message`, `timestamp`).",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.platform = platform
    install_error_handlers(app)

    @app.middleware("http")
    async def request_ids(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Echo X-Request-ID / X-Correlation-ID (new ones when the caller sent none)."""
        request_id = request.headers.get(REQUEST_ID) or new_request_id()
        correlation_id = request.headers.get(CORRELATION_ID) or request_id
        response = await call_next(request)
        response.headers[REQUEST_ID] = request_id
        response.headers[CORRELATION_ID] = correlation_id
        return response

    app.include_router(credentials.router, prefix=f"/{VERSION}", tags=["credentials"], dependencies=TOKEN)
    for name, router in MODULE_ROUTERS.items():
        app.include_router(router, prefix=f"/cpo/{VERSION}/{name}", tags=[name], dependencies=TOKEN)
    app.include_router(
        credentials.router_211, prefix=f"/{VERSION_211}", tags=["credentials 2.1.1"], dependencies=TOKEN
    )
    for name, router in MODULE_ROUTERS_211.items():
        app.include_router(
            router, prefix=f"/cpo/{VERSION_211}/{name}", tags=[f"{name} 2.1.1"], dependencies=TOKEN
        )
    app.include_router(
        tokens_sender.router, prefix=f"/emsp/{VERSION}/tokens", tags=["tokens (eMSP)"], dependencies=TOKEN
    )
    app.include_router(
        cdrs_receiver.router, prefix=f"/emsp/{VERSION}/cdrs", tags=["cdrs (eMSP)"], dependencies=TOKEN
    )
    app.include_router(
        tokens_sender.router_211,
        prefix=f"/emsp/{VERSION_211}/tokens",
        tags=["tokens (eMSP) 2.1.1"],
        dependencies=TOKEN,
    )
    app.include_router(versions.router, tags=["versions"], dependencies=TOKEN)
    return app
