"""The OCPI HTTP app, mounted by the component under ``/ocpi`` (its own error handlers answer envelopes).

Paths: ``/ocpi/versions``, ``/ocpi/2.2.1`` (details), ``/ocpi/2.2.1/credentials``,
``/ocpi/cpo/2.2.1/{locations,sessions,cdrs,tariffs,tokens,commands,hubclientinfo,chargingprofiles}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from ocpi import credentials, versions
from ocpi.envelope import install_error_handlers
from ocpi.modules import cdrs, chargingprofiles, commands, hubclientinfo, locations, sessions, tariffs, tokens
from ocpi.platform import VERSION, OcpiPlatform
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


def create_ocpi_app(platform: OcpiPlatform) -> FastAPI:
    app = FastAPI(title="evhub OCPI 2.2.1", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.platform = platform
    install_error_handlers(app)

    @app.middleware("http")
    async def request_ids(request: Request, call_next):  # type: ignore[no-untyped-def]
        """Echo X-Request-ID / X-Correlation-ID (new ones when the caller sent none)."""
        request_id = request.headers.get(REQUEST_ID) or new_request_id()
        correlation_id = request.headers.get(CORRELATION_ID) or request_id
        response = await call_next(request)
        response.headers[REQUEST_ID] = request_id
        response.headers[CORRELATION_ID] = correlation_id
        return response

    app.include_router(credentials.router, prefix=f"/{VERSION}")
    for name, router in MODULE_ROUTERS.items():
        app.include_router(router, prefix=f"/cpo/{VERSION}/{name}")
    app.include_router(versions.router)
    return app
