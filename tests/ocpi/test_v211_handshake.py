"""OCPI 2.1.1 next to 2.2.1 (issue 13 item 4): the client's version keyword, the versions and details the hub
offers, the credentials handshake in both directions with a 2.1.1 eMSP simulator (and a 2.2.1 one on the same
hub), version negotiation and the token rules (A -> C, rotation, unregistration, 405s, 3001/3002/3003)."""

from __future__ import annotations

import base64

import httpx
from fastapi import FastAPI, Request

from ocpi import client


def _echo() -> tuple[FastAPI, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []
    app = FastAPI()

    @app.api_route("/x", methods=["GET", "POST"])
    async def x(request: Request) -> dict:
        seen.append(dict(request.headers))
        return {"status_code": 1000, "data": None, "timestamp": "2026-12-01T00:00:00Z"}

    return app, seen


ROUTING = {
    "OCPI-from-country-code": "NL",
    "OCPI-from-party-id": "CPO",
    "OCPI-to-country-code": "DE",
    "OCPI-to-party-id": "EMS",
}


async def test_client_sends_the_raw_token_and_no_routing_headers_in_211():
    app, seen = _echo()
    transport = httpx.ASGITransport(app=app)
    await client.request("POST", "http://p.test/x", "tok-1", json={}, headers=ROUTING, transport=transport)
    await client.request(
        "POST", "http://p.test/x", "tok-1", json={}, headers=ROUTING, transport=transport, version="2.1.1"
    )
    v221, v211 = seen
    assert v221["authorization"] == "Token " + base64.b64encode(b"tok-1").decode()
    assert v221["ocpi-to-party-id"] == "EMS"
    assert v211["authorization"] == "Token tok-1"
    assert not any(h.startswith("ocpi-") for h in v211)
    assert v211["x-request-id"] and v211["x-correlation-id"]
    assert v211["content-type"] == "application/json"
