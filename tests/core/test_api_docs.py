"""The API documents itself without internet: /docs and /redoc load their assets from the hub, OpenAPI
declares the bearer-key scheme, a typed body for every answer and the one error model; the OCPI platform
publishes its own document with the OCPI Token scheme."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from evhub.app import create_app, load_components
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.settings import load_settings

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
BINARY = {"application/pdf"}  # a document's PDF (/api/billing/invoices/{number}/pdf): no JSON body to type


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(database_url=db.url, api_auth=True, _env_file=None)
    hub = Hub(settings=settings, db=db, node_name="test")
    hub.app = create_app(hub)
    for component in load_components():
        component.install(hub)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        yield http


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/ocpi/docs", "/ocpi/redoc"])
async def test_doc_pages_load_every_asset_from_the_hub(client: httpx.AsyncClient, page: str) -> None:
    html = await client.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert "://" not in html.text, "a page refers to another host (CDN, fonts)"
    assets = ASSET.findall(html.text)
    assert len(assets) >= (3 if "docs" in page else 2), assets
    prefix = "/ocpi" if page.startswith("/ocpi") else ""
    for url in assets:
        assert url.startswith(f"{prefix}/docs/assets/"), url
        r = await client.get(url)
        suffix = url[url.rindex(".") :]
        assert r.status_code == 200 and EXPECTED_TYPES[suffix] in r.headers["content-type"], url
        assert len(r.content) > 1000, url
    openapi = re.search(r"""(?:url: |spec-url=)['"]([^'"]+)['"]""", html.text)
    assert openapi is not None and openapi.group(1) == f"{prefix}/openapi.json"


async def test_openapi_declares_auth_types_and_errors(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        **doc["components"]["securitySchemes"]["ApiKey"],
        "type": "http",
        "scheme": "bearer",
    }
    operations = [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]
    api = [(path, method, op) for path, method, op in operations if path.startswith("/api/")]
    assert len(api) >= 21
    for path, method, op in api:
        where = f"{method.upper()} {path}"
        assert op.get("security") == [{"ApiKey": []}], where
        ok = op["responses"].get("200") or op["responses"]["201"]
        if "application/json" in ok["content"] or not set(ok["content"]) <= BINARY:
            schema = ok["content"]["application/json"]["schema"]
            assert (
                schema.get("$ref")
                or schema.get("items", {}).get("$ref")
                or schema.get("items", {}).get("oneOf")
            ), where
        for code in ("401", "422"):
            error = op["responses"][code]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ApiError"}, (where, code)
        if "{" in path and method == "get":
            assert "404" in op["responses"], where
        if method == "get" and "{" not in path:
            assert {p["name"] for p in op.get("parameters", [])} >= {"limit", "offset"}, where
            assert "X-Total-Count" in op["responses"]["200"]["headers"], where
    for path, _method, op in operations:
        ok = op["responses"].get("200") or op["responses"]["201"]
        assert ok.get("content"), path  # /health and /metrics too
    command = doc["paths"]["/api/chargers/{identity}/commands/{command}"]["post"]
    (param,) = [p for p in command["parameters"] if p["name"] == "command"]
    enum = doc["components"]["schemas"][param["schema"]["$ref"].rsplit("/", 1)[1]]["enum"]
    assert "remote-start" in enum and "reset" in enum and len(enum) == 13


async def test_ocpi_platform_publishes_its_own_document(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/ocpi/openapi.json")).json()
    scheme = doc["components"]["securitySchemes"]["OcpiToken"]
    assert scheme["type"] == "apiKey" and scheme["in"] == "header" and scheme["name"] == "Authorization"
    paths = set(doc["paths"])
    assert "/versions" in paths and "/2.2.1/credentials" in paths
    assert any(p.startswith("/cpo/2.2.1/locations") for p in paths)
    assert any(p.startswith("/cpo/2.2.1/commands") for p in paths)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("security") == [{"OcpiToken": []}], f"{method} {path}"
    main = (await client.get("/openapi.json")).json()
    assert not any(p.startswith("/ocpi") for p in main["paths"])  # one document per API
