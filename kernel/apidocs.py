"""Interactive API documentation (Swagger UI at ``/docs``, ReDoc at ``/redoc``) that works without internet.

FastAPI's own pages load their JavaScript and CSS from a CDN, so they are blank on a closed network. These
pages load the same assets from the hub itself: the ``fastapi-offline`` package (MIT) ships swagger-ui-dist
(Apache-2.0) and the ReDoc standalone bundle (MIT), and they are served from ``<docs>/assets/``. No page
refers to a host other than the one serving it (no Google Fonts, a local favicon).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles


def asset_directory() -> Path:
    """Where the installed ``fastapi-offline`` package keeps the swagger-ui and ReDoc files."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve the app's OpenAPI document as Swagger UI and ReDoc pages with local assets.

    Build the app with ``docs_url=None, redoc_url=None``. URLs honour the ASGI ``root_path``, so the same pages
    work for an app mounted under a prefix (the OCPI app under ``/ocpi``)."""
    assets = f"{docs_url}/assets"
    app.mount(assets, StaticFiles(directory=asset_directory()), name=f"docs-assets{docs_url}")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{assets}/favicon.png",
            with_google_fonts=False,
        )
