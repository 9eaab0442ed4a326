"""A simulated external CPO: a roaming partner's charging network that takes the hub as its eMSP for the
hub's hosted eMSPs (``NL*EVH``'s fleet cards). It speaks OCPI 2.2.1: versions and details (credentials,
tokens ``RECEIVER``), a tokens Receiver that keeps the latest Token PUT or PATCHed for each uid — what its
chargers would check a card against locally — and, as a client, the hub's tokens Sender: the token list and
real-time authorization. Used by the demo, in-process::

    cpo = CpoSimulator(country_code="BE", party_id="ION")
    await cpo.start()                                 # uvicorn on a free loopback port
    await cpo.register(hub_versions_url, token_a)     # the handshake, as the initiator (invited with role CPO)
    cpo.tokens["ACME0001"]["valid"]                   # what the hub pushed
    await cpo.authorize("ACME0001")                   # the hub's AllowedType: ALLOWED, BLOCKED, ...
    await cpo.stop()
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kernel.httpserver import HttpServer
from simulators.ocpi_wire import VERSION, auth_header, envelope, tokens_in


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
        self._server: HttpServer | None = None
        self.app = self._build_app()

    @property
    def base_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the simulator is not served: start() it")
        return f"{self.url.rstrip('/')}/ocpi"

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/versions"

    async def start(self, port: int = 0) -> str:
        """Serve on ``port`` (a free one when 0). Returns the versions URL."""
        self._server = HttpServer(self.app, host=self.host, port=port)
        self.url = self._server.url
        await self._server.start()
        return self.versions_url

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        self._server = None

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
