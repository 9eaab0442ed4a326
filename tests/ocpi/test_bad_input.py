"""Issue 15 item 5 on ``/ocpi``: a registered partner's bad input is an OCPI error (HTTP 4xx, status 2001 for
invalid parameters), never HTTP 500 / 3000 — NUL characters, int64-overflowing paging, year-10000 and huge-offset
DateTimes, Unicode digits, deep JSON, fields past the spec's lengths and oversized extras in a Token.

The hub app gets the same outermost guard ``evhub.app.create_app`` installs (:class:`kernel.httpguard.HttpGuard`).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from kernel.httpguard import HttpGuard
from tests.ocpi._helpers import connect, seed_site

LIMIT = 256 * 1024


@pytest.fixture
async def partner(hub, sim):
    hub.hub.app.add_middleware(HttpGuard, max_body_bytes=LIMIT)
    await seed_site(hub.db)
    await connect(hub, sim)
    return sim


def _auth(sim) -> dict[str, str]:
    return {"Authorization": f"Token {sim.hub_token}", **sim.routing()}


def _invalid(r: httpx.Response, http_status: int = 400, code: int = 2001) -> dict[str, Any]:
    assert r.status_code == http_status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["status_code"] == code, body
    assert body["status_message"] and body["timestamp"]
    return body


async def _put_token(sim, token: dict[str, Any], uid: str | None = None) -> httpx.Response:
    url = f"{sim._hub_url('tokens')}/{sim.country_code}/{sim.party_id}/{uid or token['uid']}"
    async with sim.http() as http:
        return await http.put(url, json=token, params={"type": token["type"]}, headers=_auth(sim))


async def test_nul_in_a_token_body_or_path_is_2001(partner) -> None:
    r = await _put_token(partner, {**partner.make_token("NUL-1"), "visual_number": "a\x00b"})
    _invalid(r)
    r = await _put_token(partner, partner.make_token("NUL-2"), uid="NUL%002")
    _invalid(r)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("uid", "U" * 37),  # CiString(36)
        ("contract_id", "C" * 37),  # CiString(36)
        ("visual_number", "v" * 65),  # string(64)
        ("issuer", "i" * 65),  # string(64)
        ("group_id", "g" * 37),  # CiString(36)
        ("energy_contract", {"supplier_name": "s" * 65}),  # string(64)
        ("language", "nld"),  # string(2)
    ],
)
async def test_token_fields_past_their_spec_length_are_2001(partner, field: str, value: Any) -> None:
    token = {**partner.make_token("LEN-1"), field: value}
    r = await _put_token(partner, token, uid="LEN-1")
    _invalid(r)


async def test_oversized_unknown_token_fields_are_2001_not_stored(partner) -> None:
    token = {**partner.make_token("EXTRA-1"), "x_blob": "z" * 100_000}
    _invalid(await _put_token(partner, token))
    deep_extra = {**partner.make_token("EXTRA-2"), "x_nested": json.loads('{"a":' * 40 + "1" + "}" * 40)}
    _invalid(await _put_token(partner, deep_extra))


async def test_a_token_body_past_the_limit_is_413(partner) -> None:
    token = {**partner.make_token("BIG-1"), "x_blob": "z" * (LIMIT + 1)}
    r = await _put_token(partner, token)
    _invalid(r, 413, 2000)


@pytest.mark.parametrize(
    "last_updated",
    [
        "10000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "²⁰²⁶-01-01T00:00:00Z",
    ],
)
async def test_token_datetimes_that_overflow_are_2001(partner, last_updated: str) -> None:
    r = await _put_token(partner, {**partner.make_token("DT-1"), "last_updated": last_updated})
    _invalid(r)


async def test_deep_json_is_2001(partner) -> None:
    url = f"{partner._hub_url('tokens')}/{partner.country_code}/{partner.party_id}/DEEP-1"
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    async with partner.http() as http:
        r = await http.put(
            url,
            content=deep[: LIMIT - 1] if len(deep) >= LIMIT else deep,
            params={"type": "RFID"},
            headers={**_auth(partner), "content-type": "application/json"},
        )
    assert 400 <= r.status_code < 500 and r.json()["status_code"] in (2000, 2001), r.text[:300]
    inner = b'{"a":' * 20_000 + b"1" + b"}" * 20_000
    async with partner.http() as http:
        r = await http.put(
            url,
            content=inner,
            params={"type": "RFID"},
            headers={**_auth(partner), "content-type": "application/json"},
        )
    _invalid(r)


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "99999999999999999999"},
        {"limit": "99999999999999999999"},
        {"offset": "-1"},
        {"offset": "²"},
        {"limit": "٣"},
        {"date_from": "10000-01-01T00:00:00Z"},
        {"date_to": "9999-12-31T23:59:59-23:59"},
        {"date_from": "0001-01-01T00:00:00+23:59"},
        {"date_from": "2026-01-01T00:00:00\x00Z"},
    ],
)
@pytest.mark.parametrize("module", ["locations", "sessions", "cdrs", "tariffs"])
async def test_paging_parameters_out_of_range_are_4xx(partner, module: str, params: dict[str, str]) -> None:
    async with partner.http() as http:
        r = await http.get(partner._hub_url(module), params=params, headers=_auth(partner))
    assert r.status_code != 500 and r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.json()["status_code"] in (2000, 2001), r.text[:300]


@pytest.mark.parametrize(
    "path",
    ["locations/99999999999999999999", "locations/%C2%B2/%C2%B2", "sessions/" + "s" * 5000, "cdrs/%00"],
)
async def test_object_ids_out_of_range_are_4xx(partner, path: str) -> None:
    base = partner._hub_url(path.split("/", 1)[0])
    async with partner.http() as http:
        r = await http.get(f"{base}/{path.split('/', 1)[1]}", headers=_auth(partner))
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.json()["status_code"] in (2000, 2001, 2003), r.text[:300]


async def test_a_command_response_url_past_255_is_2001(partner) -> None:
    """OCPI 2.2.1 URL is string(255): a longer response_url is refused (PostgreSQL refused it with a 500)."""
    url = f"{partner._hub_url('commands')}/STOP_SESSION"
    async with partner.http() as http:
        for response_url in ("https://emsp.example/" + "r" * 300, "https://emsp.example/\x00"):
            body = {"response_url": response_url, "session_id": "S-1"}
            _invalid(await http.post(url, json=body, headers=_auth(partner)))
