"""An external CPO partner of the hub's hosted eMSPs, for the tests of the tokens Sender and the token push: a
tokens Receiver (PUT/PATCH ``/ocpi/cpo/{version}/tokens/{cc}/{pid}/{uid}``) recording what it receives, served
on the OCPI tests' in-process network (or on a loopback HTTP server for ``real_sockets`` tests), and its row in
``ocpi_partners`` (registered, token C known to the hub, a CPO role); the hub's hosted eMSP ``NL*EVH`` with
tokens, and a billing hold on one of them (:mod:`tests.billing.dunning_kit`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kernel.db.engine import Database
from kernel.httpserver import HttpServer
from kernel.models import Party, PartyRole, Token
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, PartnerStatus
from kernel.security import hash_token
from kernel.timeutil import utcnow
from ocpi.partner_auth import encode_token
from tests.ocpi._network import InProcessNetwork


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeCpo:
    """The CPO's tokens Receiver: every request it got, in order."""

    version: str = "2.2.1"
    received: list[Received] = field(default_factory=list)
    url: str = ""
    server: HttpServer | None = None

    async def handle(self, request: Request) -> JSONResponse:
        self.received.append(
            Received(
                request.method,
                request.url.path,
                request.url.query,
                {k.lower(): v for k, v in request.headers.items()},
                await request.json(),
            )
        )
        return JSONResponse({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": None})

    async def versions(self, request: Request) -> JSONResponse:
        data = [{"version": self.version, "url": f"{self.url}/ocpi/{self.version}"}]
        return JSONResponse({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": data})

    async def details(self, request: Request) -> JSONResponse:
        endpoints = [
            {
                "identifier": "credentials",
                "role": "RECEIVER",
                "url": f"{self.url}/ocpi/{self.version}/credentials",
            },
            {"identifier": "tokens", "role": "RECEIVER", "url": self.tokens_url},
        ]
        data = {"version": self.version, "endpoints": endpoints}
        return JSONResponse({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": data})

    def app(self) -> Starlette:
        path = f"/ocpi/cpo/{self.version}/tokens/{{cc}}/{{pid}}/{{uid}}"
        return Starlette(
            routes=[
                Route(path, self.handle, methods=["PUT", "PATCH"]),
                Route("/ocpi/versions", self.versions, methods=["GET"]),
                Route(f"/ocpi/{self.version}", self.details, methods=["GET"]),
            ]
        )

    async def register(
        self, client: httpx.AsyncClient, versions_url: str, token_a: str, key: str, token_b: str
    ) -> dict[str, Any]:
        """The OCPI 2.2.1 handshake as the CPO ``key`` starts it: the hub's versions and details with token A,
        then POST credentials (token B, this CPO's versions URL); the hub's credentials object answered."""
        auth = {"Authorization": encode_token(token_a)}
        versions = (await client.get(versions_url, headers=auth)).json()["data"]
        details_url = next(v["url"] for v in versions if v["version"] == "2.2.1")
        details = (await client.get(details_url, headers=auth)).json()["data"]
        credentials_url = next(e["url"] for e in details["endpoints"] if e["identifier"] == "credentials")
        cc, pid = key.split("*")
        own = {
            "token": token_b,
            "url": f"{self.url}/ocpi/versions",
            "roles": [
                {
                    "role": "CPO",
                    "country_code": cc,
                    "party_id": pid,
                    "business_details": {"name": f"CPO {key}"},
                }
            ],
        }
        reply = await client.post(credentials_url, json=own, headers=auth)
        assert reply.status_code == 200, reply.text
        return reply.json()["data"]

    @property
    def tokens_url(self) -> str:
        return f"{self.url}/ocpi/cpo/{self.version}/tokens"

    def puts(self, uid: str) -> list[dict[str, Any]]:
        """The bodies PUT for token ``uid``, oldest first."""
        return [r.body for r in self.received if r.method == "PUT" and r.path.rsplit("/", 1)[-1] == uid]

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


async def serve_cpo(network: InProcessNetwork | None, host: str, version: str = "2.2.1") -> FakeCpo:
    cpo = FakeCpo(version=version)
    if network is None:
        cpo.server = HttpServer(cpo.app())
        await cpo.server.start()
        cpo.url = cpo.server.url
    else:
        cpo.url = network.serve(host, cpo.app())
    return cpo


async def add_cpo_partner(
    db: Database,
    cpo: FakeCpo | None,
    *,
    key: str = "BE*ION",
    role: str = "CPO",
    token_c: str = "cpo-token-c",
) -> int:
    """A registered partner (role ``role`` of party ``key``) whose token C is ``token_c``, receiving tokens at
    ``cpo`` (None: no tokens Receiver); returns its id."""
    cc, pid = key.split("*")
    version = cpo.version if cpo is not None else "2.2.1"
    async with db.session() as s:
        party = Party(country_code=cc, party_id=pid, role=PartyRole(role), name=f"Partner {key}")
        s.add(party)
        await s.flush()
        endpoints: list[dict[str, str]] = []
        if cpo is not None:
            entry = {"identifier": "tokens", "url": cpo.tokens_url}
            if version != "2.1.1":
                entry["role"] = "RECEIVER"
            endpoints.append(entry)
        partner = OcpiPartner(
            name=f"Partner {key}",
            status=PartnerStatus.REGISTERED,
            version=version,
            incoming_token_hash=hash_token(token_c),
            incoming_token_kind="C",
            endpoints=endpoints,
        )
        partner.outgoing_token = f"hub-token-for-{key}"
        partner.roles.append(OcpiPartnerRole(party_pk=party.id, country_code=cc, party_id=pid, role=role))
        s.add(partner)
        await s.flush()
        return partner.id


async def add_hosted_emsp(db: Database, key: str = "NL*EVH") -> int:
    cc, pid = key.split("*")
    async with db.session() as s:
        party = Party(country_code=cc, party_id=pid, role=PartyRole.EMSP, name=f"hosted eMSP {key}")
        s.add(party)
        await s.flush()
        return party.id


async def add_emsp_token(db: Database, emsp_pk: int, uid: str, **extra: Any) -> int:
    async with db.session() as s:
        party = await s.get(Party, emsp_pk)
        assert party is not None
        token = Token(
            country_code=party.country_code,
            party_id=party.party_id,
            uid=uid,
            type=extra.pop("type", "RFID"),
            contract_id=f"{party.country_code}{party.party_id}C{uid}",
            issuer=party.name,
            emsp_id=emsp_pk,
            last_updated=extra.pop("last_updated", utcnow()),
            **extra,
        )
        s.add(token)
        await s.flush()
        return token.id


async def own_token(db: Database, token_id: int, emsp_pk: int) -> None:
    """Make token ``token_id`` one of hosted eMSP ``emsp_pk``'s (its issuer and party)."""
    async with db.session() as s:
        token = await s.get(Token, token_id)
        party = await s.get(Party, emsp_pk)
        assert token is not None and party is not None
        token.emsp_id, token.country_code, token.party_id = party.id, party.country_code, party.party_id


def cpo_headers(
    token_c: str = "cpo-token-c", *, to: str = "NL*EVH", sender: str = "BE*ION"
) -> dict[str, str]:
    """A 2.2.1 request of the CPO partner ``sender`` to the hosted eMSP ``to``."""
    to_cc, to_pid = to.split("*")
    from_cc, from_pid = sender.split("*")
    return {
        "Authorization": encode_token(token_c),
        "OCPI-from-country-code": from_cc,
        "OCPI-from-party-id": from_pid,
        "OCPI-to-country-code": to_cc,
        "OCPI-to-party-id": to_pid,
    }


async def get_json(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> tuple[httpx.Response, Any]:
    reply = await client.get(url, headers=headers)
    return reply, reply.json()
