"""A simulated external CPO: a roaming partner's charging network that takes the hub as its eMSP for the
hub's hosted eMSPs (``NL*EVH``'s fleet cards). It speaks OCPI 2.2.1: versions and details (credentials,
tokens ``RECEIVER``), a tokens Receiver that keeps the latest Token PUT or PATCHed for each uid — what its
chargers would check a card against locally — and, as a client, the hub's tokens Sender (the token list and
real-time authorization) and the hub's CDRs Receiver (it posts the CDR of a session a card had at its charger,
and reads it back at the URL the hub answered). Used by the demo, in-process::

    cpo = CpoSimulator(country_code="BE", party_id="ION")
    await cpo.start()                                 # uvicorn on a free loopback port
    await cpo.register(hub_versions_url, token_a)     # the handshake, as the initiator (invited with role CPO)
    cpo.tokens["ACME0001"]["valid"]                   # what the hub pushed
    await cpo.authorize("ACME0001")                   # the hub's AllowedType: ALLOWED, BLOCKED, ...
    cdr = cpo.session_cdr("ION-CDR-0001", "ACME0001", "NL*EVH", start, Decimal("20"), Decimal("1"))
    posted = await cpo.post_cdr(cdr, "NL*EVH")        # the hub's CDRs Receiver: HTTP status, envelope, Location
    await cpo.get_cdr(posted.location, "NL*EVH")      # the CDR as the hub stored it
    await cpo.stop()

The CDRs it posts are priced by its own tariff (:data:`TARIFF`: energy, charging time, 21 % VAT), each amount
rounded to the cent, and sent as exact JSON numbers (:func:`kernel.jsonutil.dumps`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kernel import jsonutil
from kernel.money import round_amount
from kernel.timeutil import format_rfc3339
from simulators.ocpi_wire import VERSION, auth_header, envelope, tokens_in
from simulators.serving import Serving, ocpi_base

TARIFF = {"energy": Decimal("0.45"), "time": Decimal("1.00"), "vat": Decimal(21)}
"""The simulated CPO's own price: per kWh and per hour charging, excl. VAT, and its VAT (percent)."""
LOCATION = {
    "id": "ION-GENT-1",
    "name": "Gent Zuid",
    "address": "F.Rooseveltlaan 3A",
    "city": "Gent",
    "postal_code": "9000",
    "country": "BEL",
    "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
    "evse_uid": "ION-GENT-1-1",
    "evse_id": "BE*ION*E1",
    "connector_id": "1",
    "connector_standard": "IEC_62196_T2",
    "connector_format": "SOCKET",
    "connector_power_type": "AC_3_PHASE",
}


@dataclass(frozen=True)
class PostedCdr:
    """The hub's answer to a CDR POST: HTTP status, the OCPI envelope, the ``Location`` header."""

    http_status: int
    body: dict[str, Any]
    location: str | None


@dataclass
class CpoSimulator:
    country_code: str = "BE"
    party_id: str = "ION"
    name: str = "Simulated CPO"
    host: str = "127.0.0.1"
    hub_timeout: float = 10.0
    url: str | None = None  # where the hub reaches us: set by start()
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> the latest Token received
    received: int = 0  # token PUTs and PATCHes received

    def __post_init__(self) -> None:
        self.my_token: str | None = None  # what the hub presents to us (B, then C)
        self.hub_token: str | None = None  # what we present to the hub
        self.hub_endpoints: list[dict[str, Any]] = []
        self.hub_roles: list[dict[str, Any]] = []
        self._serving = Serving()
        self.app = self._build_app()

    @property
    def base_url(self) -> str:
        return ocpi_base(self.url)

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/versions"

    async def start(self, port: int = 0) -> str:
        """Serve on ``port`` (a free one when 0). Returns the versions URL."""
        self.url = await self._serving.start(self.app, self.host, port)
        return self.versions_url

    async def stop(self) -> None:
        await self._serving.stop()

    def credentials(self, token: str) -> dict[str, Any]:
        role = {
            "role": "CPO",
            "country_code": self.country_code,
            "party_id": self.party_id,
            "business_details": {"name": self.name},
        }
        return {"token": token, "url": self.versions_url, "roles": [role]}

    # ------------------------------------------------------------------------------------- our interfaces

    def _build_app(self) -> FastAPI:
        app = FastAPI(title=f"simulated CPO {self.country_code}*{self.party_id}")
        sim = self

        def authorized(request: Request) -> bool:
            return sim.my_token is not None and sim.my_token in tokens_in(
                request.headers.get("Authorization")
            )

        def refused() -> JSONResponse:
            return JSONResponse(envelope(code=2001, message="unknown token"), status_code=401)

        @app.get("/ocpi/versions")
        async def versions(request: Request) -> Any:
            return envelope([{"version": VERSION, "url": f"{sim.base_url}/{VERSION}"}])

        @app.get(f"/ocpi/{VERSION}")
        async def details(request: Request) -> Any:
            endpoints = [
                {
                    "identifier": "credentials",
                    "role": "RECEIVER",
                    "url": f"{sim.base_url}/{VERSION}/credentials",
                },
                {"identifier": "tokens", "role": "RECEIVER", "url": f"{sim.base_url}/cpo/{VERSION}/tokens"},
            ]
            return envelope({"version": VERSION, "endpoints": endpoints})

        @app.api_route(f"/ocpi/cpo/{VERSION}/tokens/{{cc}}/{{pid}}/{{uid}}", methods=["PUT", "PATCH"])
        async def token(cc: str, pid: str, uid: str, request: Request) -> Any:
            if not authorized(request):
                return refused()
            body = await request.json()
            if not isinstance(body, dict):
                return JSONResponse(envelope(code=2001, message="not a Token"), status_code=400)
            if request.method == "PATCH" and uid not in sim.tokens:
                return JSONResponse(envelope(code=2004, message=f"unknown token {uid}"), status_code=404)
            sim.tokens[uid] = {**sim.tokens.get(uid, {}), **body} if request.method == "PATCH" else body
            sim.received += 1
            return envelope()

        return app

    # ----------------------------------------------------------------------------------- calls to the hub

    async def _call(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": auth_header(token), **kwargs.pop("headers", {})}
        async with httpx.AsyncClient(timeout=self.hub_timeout) as http:
            return await http.request(method, url, headers=headers, **kwargs)

    def _hub_url(self, identifier: str, role: str) -> str:
        for ep in self.hub_endpoints:
            if ep.get("identifier") == identifier and ep.get("role") == role:
                return str(ep["url"])
        raise LookupError(f"the hub offers no {identifier} {role} endpoint")

    def _routing(self, emsp: str) -> dict[str, str]:
        cc, pid = emsp.split("*")
        return {
            "OCPI-from-country-code": self.country_code,
            "OCPI-from-party-id": self.party_id,
            "OCPI-to-country-code": cc,
            "OCPI-to-party-id": pid,
            "X-Request-ID": uuid.uuid4().hex,
            "X-Correlation-ID": uuid.uuid4().hex,
        }

    async def register(self, hub_versions_url: str, token_a: str) -> dict[str, Any]:
        """Register with the hub (we initiate): versions and details with token A, POST our credentials with a
        new token B, keep the token C the hub answers. Returns the hub's credentials."""
        versions = (await self._call("GET", hub_versions_url, token_a)).json()["data"]
        details_url = next(v["url"] for v in versions if v["version"] == VERSION)
        self.hub_endpoints = (await self._call("GET", details_url, token_a)).json()["data"]["endpoints"]
        self.my_token = "sim-cpo-b-" + uuid.uuid4().hex
        credentials_url = next(e["url"] for e in self.hub_endpoints if e["identifier"] == "credentials")
        reply = await self._call("POST", credentials_url, token_a, json=self.credentials(self.my_token))
        body = reply.json()
        if reply.status_code != 200 or body.get("status_code") != 1000:
            self.my_token = None
            raise RuntimeError(f"registration failed: HTTP {reply.status_code} {body}")
        self.hub_token = body["data"]["token"]
        self.hub_roles = list(body["data"].get("roles", []))
        return dict(body["data"])

    async def list_tokens(self, emsp: str) -> list[dict[str, Any]]:
        """Every token of the hosted eMSP ``emsp`` (``CC*PID``) from the hub's tokens Sender, page by page."""
        assert self.hub_token, "register first"
        url: str | None = self._hub_url("tokens", "SENDER")
        found: list[dict[str, Any]] = []
        while url:
            reply = await self._call("GET", url, self.hub_token, headers=self._routing(emsp))
            found += reply.json()["data"]
            link = reply.headers.get("Link", "")
            url = link.split(";")[0].strip().strip("<>") if 'rel="next"' in link else None
        return found

    def session_cdr(
        self, cdr_id: str, uid: str, emsp: str, start: datetime, kwh: Decimal, hours: Decimal
    ) -> dict[str, Any]:
        """The CDR of our session of card ``uid`` (of ``emsp``, ``CC*PID``) from ``start``, ``kwh`` charged in
        ``hours``, priced by :data:`TARIFF` (each component rounded to the cent; its VAT too)."""
        cc, pid = emsp.split("*")

        def price(net: Decimal) -> dict[str, Decimal]:
            net = round_amount(net, "EUR")
            return {"excl_vat": net, "incl_vat": round_amount(net * (100 + TARIFF["vat"]) / 100, "EUR")}

        energy, time = price(kwh * TARIFF["energy"]), price(hours * TARIFF["time"])
        end = start + timedelta(seconds=int(hours * 3600))
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "id": cdr_id,
            "start_date_time": format_rfc3339(start),
            "end_date_time": format_rfc3339(end),
            "session_id": f"{cdr_id}-S",
            "cdr_token": {
                "country_code": cc,
                "party_id": pid,
                "uid": uid,
                "type": "RFID",
                "contract_id": f"{cc}{pid}C{uid}",
            },
            "auth_method": "WHITELIST",
            "cdr_location": LOCATION,
            "currency": "EUR",
            "charging_periods": [
                {"start_date_time": format_rfc3339(start), "dimensions": [{"type": "ENERGY", "volume": kwh}]}
            ],
            "total_cost": {k: energy[k] + time[k] for k in ("excl_vat", "incl_vat")},
            "total_energy": kwh,
            "total_energy_cost": energy,
            "total_time": hours,
            "total_time_cost": time,
            "last_updated": format_rfc3339(end),
        }

    async def post_cdr(self, cdr: dict[str, Any], emsp: str) -> PostedCdr:
        """POST ``cdr`` to the hub's CDRs Receiver (the hub as the eMSP ``emsp``), as exact JSON."""
        assert self.hub_token, "register first"
        reply = await self._call(
            "POST",
            self._hub_url("cdrs", "RECEIVER"),
            self.hub_token,
            content=jsonutil.dumps(cdr),
            headers={**self._routing(emsp), "Content-Type": "application/json"},
        )
        return PostedCdr(reply.status_code, jsonutil.loads(reply.content), reply.headers.get("Location"))

    async def get_cdr(self, location: str, emsp: str) -> dict[str, Any] | None:
        """The CDR at ``location`` (a POST's answer) as the hub serves it; None when it answers no CDR."""
        assert self.hub_token, "register first"
        reply = await self._call("GET", location, self.hub_token, headers=self._routing(emsp))
        body = jsonutil.loads(reply.content)
        return body.get("data") if reply.status_code == 200 and body.get("status_code") == 1000 else None

    async def authorize(self, uid: str, emsp: str, location_id: str = "ION-LOC-1") -> str:
        """Real-time authorization of ``uid`` at our location: the hub's AllowedType (or ``HTTP <code>``)."""
        assert self.hub_token, "register first"
        url = f"{self._hub_url('tokens', 'SENDER')}/{uid}/authorize"
        reply = await self._call(
            "POST", url, self.hub_token, json={"location_id": location_id}, headers=self._routing(emsp)
        )
        if reply.status_code != 200:
            return f"HTTP {reply.status_code}"
        return str(reply.json()["data"]["allowed"])
