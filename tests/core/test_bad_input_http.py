"""Issue 15 item 5 (and the size part of item 3): the assembled HTTP app (every component installed, as
``evhub serve`` has it) answers bad input with a 4xx in each surface's own terms and an unreachable database with
503 + Retry-After, logs one line per kind without a traceback, and never answers 500.

Bodies past ``http_max_body_bytes`` are refused before they are read whole: by Content-Length at once, and a
chunked body at the first chunk past the limit (the test counts the chunks the app pulled), unauthenticated too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from evhub.app import create_app
from evhub.wiring import load_components, wire
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.settings import load_settings
from tests.world.api_network import ApiNetwork, seed_api_network

LIMIT = 64 * 1024


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://hub")


def _app(db: Database, **overrides: object) -> object:
    settings = load_settings(
        database_url=db.url,
        api_auth=True,
        http_max_body_bytes=LIMIT,
        stripe_webhook_secret="whsec_bad_input_tests_0123456789",
        _env_file=None,
        **overrides,
    )
    hub = Hub(settings=settings, db=db, node_name="test")
    hub.app = create_app(hub)
    wire(hub, load_components())
    return hub.app


@pytest.fixture
async def network(db: Database) -> ApiNetwork:
    return await seed_api_network(db)


@pytest.fixture
async def client(db: Database, network: ApiNetwork) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_app(db)) as http:
        yield http


def _as_hub(network: ApiNetwork) -> dict[str, str]:
    return {"Authorization": f"Bearer {network.keys['hub']}"}


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "kernel.httpguard"]


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], [
        r.getMessage() for r in caplog.records if r.exc_info
    ]


SURFACES = [
    ("/api/tariffs/quote", "api"),
    ("/ocpi/2.2.1/credentials", "ocpi"),
    ("/portal/login", "portal"),
    ("/billing/webhooks/stripe", "api"),
]


def _check_surface(response: httpx.Response, surface: str, status: int) -> None:
    assert response.status_code == status, response.text
    if surface == "api":
        assert isinstance(response.json()["detail"], str)
    elif surface == "ocpi":
        body = response.json()
        assert body["status_code"] in (2000, 2001) and body["status_message"] and body["timestamp"]
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert "could not be accepted" in response.text


@pytest.mark.parametrize(("path", "surface"), SURFACES)
async def test_a_body_over_the_limit_is_413_by_content_length_unauthenticated(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, path: str, surface: str
) -> None:
    caplog.set_level(logging.INFO)
    r = await client.post(
        path, content=b"{" + b" " * LIMIT + b"}", headers={"content-type": "application/json"}
    )
    _check_surface(r, surface, 413)
    assert len(_refusals(caplog)) == 1
    _no_traceback(caplog)


@pytest.mark.parametrize(("path", "surface"), SURFACES)
async def test_a_chunked_body_is_cut_off_while_it_streams(
    client: httpx.AsyncClient, network: ApiNetwork, path: str, surface: str
) -> None:
    pulled = 0
    chunk = b" " * 8192
    total_chunks = 1000  # 8 MB: far past the limit

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(total_chunks):
            pulled += 1
            yield chunk

    kind = "application/x-www-form-urlencoded" if surface == "portal" else "application/json"
    r = await client.post(path, content=body(), headers={"content-type": kind, **_as_hub(network)})
    if surface == "ocpi" and r.status_code == 401:  # refused (no OCPI token) before its body was read
        assert r.json()["status_code"] == 2000
    else:
        _check_surface(r, surface, 413)
    assert pulled <= LIMIT // len(chunk) + 2, f"{pulled} chunks read for a limit of {LIMIT} bytes"


async def test_a_bad_content_length_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/tariffs/quote", content=b"{}", headers={"content-length": "²".encode("latin-1")}
    )
    assert r.status_code == 400 and "Content-Length" in r.json()["detail"]


@pytest.mark.parametrize(
    ("path", "surface", "expected"),
    [
        ("/api/sessions/a%00b", "api", 422),
        ("/api/sessions?pricing_state=%00", "api", 422),
        ("/ocpi/2.2.1/credentials?x=%00", "ocpi", 400),
        ("/ocpi/cpo/2.2.1/tokens/NL/EMS/a%00b", "ocpi", 400),
        ("/portal/login?next=%00", "portal", 422),
        ("/health?x=%00", "api", 422),
    ],
)
async def test_nul_in_path_or_query_is_refused_in_the_surfaces_terms(
    client: httpx.AsyncClient, network: ApiNetwork, path: str, surface: str, expected: int
) -> None:
    r = await client.get(path, headers=_as_hub(network))
    _check_surface(r, surface, expected)
    assert "NUL" in r.text


@pytest.mark.parametrize(
    ("path", "content_type", "body", "surface", "expected"),
    [
        ("/api/tariffs/quote", "application/json", b'{"location_id": "a\\u0000b"}', "api", 422),
        ("/portal/login", "application/x-www-form-urlencoded", b"email=a%00b&password=x", "portal", 422),
        ("/billing/webhooks/stripe", "application/json", b'{"id": "\x00"}', "api", 422),
    ],
)
async def test_nul_in_a_body_is_refused_before_any_handler(
    client: httpx.AsyncClient,
    network: ApiNetwork,
    path: str,
    content_type: str,
    body: bytes,
    surface: str,
    expected: int,
) -> None:
    r = await client.post(path, content=body, headers={"content-type": content_type, **_as_hub(network)})
    _check_surface(r, surface, expected)


async def test_deep_json_is_4xx_not_500(client: httpx.AsyncClient, network: ApiNetwork) -> None:
    deep = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    for path in ("/api/tariffs/quote", "/ocpi/2.2.1/credentials"):
        r = await client.post(
            path, content=deep, headers={"content-type": "application/json", **_as_hub(network)}
        )
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])


def _unreachable_url(database_url: str, tmp_path: Path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'no-such-folder' / 'hub.db'}"
    return make_url(database_url).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)


async def test_database_unreachable_is_503_with_retry_after_logged_once(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every surface answers 503 + Retry-After in its terms; ten requests log one line, no traceback."""
    caplog.set_level(logging.INFO)
    down = Database(_unreachable_url(database_url, tmp_path))
    try:
        async with _client(_app(down)) as http:
            answers = []
            for _ in range(3):
                answers.append(
                    ("api", await http.get("/api/sessions", headers={"Authorization": "Bearer x"}))
                )
                answers.append(
                    ("ocpi", await http.get("/ocpi/versions", headers={"Authorization": "Token abc"}))
                )
                answers.append(("api", await http.get("/api/cdrs", headers={"Authorization": "Bearer y"})))
            portal = await http.post(
                "/portal/login",
                content=b"email=a%40b.example&password=x",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
    finally:
        await down.dispose()
    for surface, r in answers:
        assert r.status_code == 503, (r.request.url, r.status_code, r.text[:300])
        assert r.headers["retry-after"].isdigit()
        if surface == "ocpi":
            assert r.json()["status_code"] == 3000
        else:
            assert "database" in r.json()["detail"]
    assert portal.status_code == 503, portal.text[:300]
    unavailable = [r for r in _refusals(caplog) if getattr(r, "fields", {}).get("kind") == "unavailable"]
    assert len(unavailable) == 1, [r.getMessage() for r in caplog.records]
    _no_traceback(caplog)
