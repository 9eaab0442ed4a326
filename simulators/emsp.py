"""A simulated eMSP: an OCPI 2.2.1 platform with the eMSP's Receiver interfaces (locations, sessions, CDRs,
tariffs, command results) and Sender behaviour (tokens with real-time authorization, remote start/stop).

Used by the demo and the tests, in-process::

    sim = EmspSimulator(country_code="DE", party_id="EMS")
    await sim.start()                                   # uvicorn on a free loopback port
    # ... or no socket at all: EmspSimulator(url="http://emsp.test", transport=t), where ``t`` (an
    # httpx.AsyncBaseTransport, e.g. httpx.ASGITransport(app=hub_app)) reaches the hub, and the hub reaches
    # ``sim.app`` through its own transport (httpx.ASGITransport(app=sim.app)) at that url
    await sim.register(hub_versions_url, token_a)       # the real handshake, as the initiator
    # ... or let the hub register with it: evhub partners register sim.versions_url sim.token_a
    await sim.push_token(sim.make_token("CARD-1"))
    await sim.start_session("LOC1", "EVSE1", "1", "CARD-1")
    sim.cdrs                                            # what it received
    await sim.stop()

It can misbehave on request (:meth:`misbehave`): answer HTTP 500/503, time out, or answer slowly, for a given
number of requests or until told otherwise — the reliability tests use it.

``EmspSimulator(version="2.1.1")`` is an OCPI 2.1.1 eMSP instead: it offers only 2.1.1 (versions, details with
``{identifier, url}`` endpoints, credentials of one party), accepts and sends the raw token in ``Authorization``
(a base64 one is refused, as a 2.1.1 peer would), serves its Receivers under ``/ocpi/emsp/2.1.1/...`` storing
what it receives as the 2.2.1 ones do (a Session PATCH replaces ``charging_periods``: 2.1.1 has no append),
lists and authorizes its tokens in 2.1.1 form (``auth_id``; an AuthorizationInfo without token or reference),
and its client calls (push_token, command, start_session, stop_session, fetch_all) are 2.1.1 requests, with no
routing headers. ``extra_versions`` adds entries to its versions list (negotiation tests).
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from simulators.ocpi_wire import VERSION, VERSION_211
from simulators.ocpi_wire import auth_header as _auth
from simulators.ocpi_wire import envelope as _envelope
from simulators.ocpi_wire import now_text as _now
from simulators.ocpi_wire import tokens_in as _tokens_in
from simulators.serving import Serving, ocpi_base


@dataclass
class Misbehaviour:
    mode: str = "none"  # none | error | timeout | slow
    status: int = 500
    delay: float = 0.0
    remaining: int | None = None  # None: until reset
    paths: tuple[str, ...] = ()  # only requests whose path contains one of these (all when empty)


@dataclass
class Received:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    answered: int
    query: str = ""


@dataclass
class EmspSimulator:
    country_code: str = "DE"
    party_id: str = "EMS"
    name: str = "Simulated eMSP"
    host: str = "127.0.0.1"
    hub_timeout: float = 10.0
    token_a: str = field(default_factory=lambda: "sim-a-" + uuid.uuid4().hex)
    url: str | None = None  # where the hub reaches us: set by start(), or given when served in-process
    transport: httpx.AsyncBaseTransport | None = None  # how we reach the hub; None: the network
    version: str = VERSION  # the OCPI version it speaks: "2.2.1" or "2.1.1"
    extra_versions: list[dict[str, str]] = field(default_factory=list)  # more entries in its versions list

    def __post_init__(self) -> None:
        if self.version not in (VERSION, VERSION_211):
            raise ValueError(f"the simulator speaks OCPI {VERSION} or {VERSION_211}, not {self.version}")
        self.my_token: str | None = None  # what the hub presents to us (B or C)
        self.hub_token: str | None = None  # what we present to the hub
        self.hub_versions_url: str | None = None
        self.hub_endpoints: list[dict[str, Any]] = []
        self.hub_roles: list[dict[str, Any]] = []
        self.registered = False
        self.locations: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.cdrs: list[dict[str, Any]] = []
        self.tariffs: dict[str, dict[str, Any]] = {}
        self.tokens: dict[tuple[str, str], dict[str, Any]] = {}
        self.command_results: dict[str, dict[str, Any]] = {}
        self.profile_results: dict[str, dict[str, Any]] = {}
        self.log: list[Received] = []
        self.authorize_answers: dict[str, str] = {}  # uid -> AllowedType (unknown uid -> 2004)
        self.offer_tokens_sender = True  # tokens Sender endpoint in our version details
        self.offer_token_list = True  # False: GET tokens answers 404 (authorize still works)
        self.token_page_limit = 100
        self.bad = Misbehaviour()
        self.port: int | None = None
        self._serving = Serving()
        self.app = self._build_app()

    # ------------------------------------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return ocpi_base(self.url, "start() it, or give its url when served in-process")

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/versions"

    @property
    def serving(self) -> bool:
        """Whether it is being served (:meth:`start`ed and not stopped)."""
        return self._serving.server is not None

    async def start(self, port: int = 0) -> str:
        """Serve on ``port`` (a free one when 0). Returns the versions URL."""
        self.url = await self._serving.start(self.app, self.host, port)
        self.port = self._serving.port
        return self.versions_url

    async def stop(self) -> None:
        await self._serving.stop()

    def misbehave(
        self,
        mode: str = "error",
        *,
        status: int = 500,
        delay: float = 0.0,
        count: int | None = None,
        paths: tuple[str, ...] = (),
    ) -> None:
        """``error`` (answer ``status``), ``timeout`` (sleep ``delay`` then 504), ``slow`` (sleep ``delay``
        then answer normally), for ``count`` requests (None: until :meth:`behave`)."""
        self.bad = Misbehaviour(mode, status, delay, count, paths)

    def behave(self) -> None:
        self.bad = Misbehaviour()

    def credentials(self, token: str) -> dict[str, Any]:
        if self.version == VERSION_211:
            return {
                "token": token,
                "url": self.versions_url,
                "business_details": {"name": self.name},
                "party_id": self.party_id,
                "country_code": self.country_code,
            }
        return {
            "token": token,
            "url": self.versions_url,
            "roles": [
                {
                    "role": "EMSP",
                    "party_id": self.party_id,
                    "country_code": self.country_code,
                    "business_details": {"name": self.name},
                }
            ],
        }

    # ------------------------------------------------------------------------------------------- the app

    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        sim = self
        version = self.version
        v211 = version == VERSION_211
        emsp = f"/ocpi/emsp/{version}"

        @app.middleware("http")
        async def misbehave(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            bad = sim.bad
            applies = bad.mode != "none" and (not bad.paths or any(p in request.url.path for p in bad.paths))
            if applies and bad.remaining is not None:
                if bad.remaining <= 0:
                    applies = False
                else:
                    bad.remaining -= 1
            if applies:
                if bad.mode == "error":
                    sim.log.append(Received(request.method, request.url.path, None, {}, bad.status))
                    return JSONResponse(_envelope(None, 3000, "simulated failure"), status_code=bad.status)
                if bad.mode == "timeout":
                    await asyncio.sleep(bad.delay or 30)
                    return JSONResponse(_envelope(None, 3000, "simulated timeout"), status_code=504)
                if bad.mode == "slow":
                    await asyncio.sleep(bad.delay)
            return await call_next(request)

        async def body_of(request: Request) -> Any:
            raw = await request.body()
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return None

        def authorized(request: Request, allow_a: bool = False) -> bool:
            presented = _tokens_in(request.headers.get("Authorization"), version)
            ok = {t for t in (sim.my_token,) if t}
            if allow_a:
                ok.add(sim.token_a)
            return bool(presented & ok)

        def deny() -> JSONResponse:
            return JSONResponse(_envelope(None, 2000, "unauthorized"), status_code=401)

        async def record(request: Request, status: int = 200) -> Any:
            body = await body_of(request)
            sim.log.append(
                Received(
                    request.method,
                    request.url.path,
                    copy.deepcopy(body),
                    dict(request.headers),
                    status,
                    request.url.query,
                )
            )
            return body

        @app.get("/ocpi/versions")
        async def versions(request: Request):
            if not authorized(request, allow_a=True):
                return deny()
            return _envelope([{"version": version, "url": f"{sim.base_url}/{version}"}, *sim.extra_versions])

        @app.get(f"/ocpi/{version}")
        async def details(request: Request):
            if not authorized(request, allow_a=True):
                return deny()
            base = f"{sim.base_url}/emsp/{version}"
            if v211:  # 2.1.1 Endpoint: identifier and url only
                modules = ["locations", "sessions", "cdrs", "tariffs", "commands"]
                if sim.offer_tokens_sender:
                    modules.insert(4, "tokens")
                endpoints = [{"identifier": "credentials", "url": f"{sim.base_url}/{version}/credentials"}]
                endpoints += [{"identifier": m, "url": f"{base}/{m}"} for m in modules]
                return _envelope({"version": version, "endpoints": endpoints})
            return _envelope(
                {
                    "version": VERSION,
                    "endpoints": [
                        {
                            "identifier": "credentials",
                            "role": "SENDER",
                            "url": f"{sim.base_url}/{VERSION}/credentials",
                        },
                        {"identifier": "locations", "role": "RECEIVER", "url": f"{base}/locations"},
                        {"identifier": "sessions", "role": "RECEIVER", "url": f"{base}/sessions"},
                        {"identifier": "cdrs", "role": "RECEIVER", "url": f"{base}/cdrs"},
                        {"identifier": "tariffs", "role": "RECEIVER", "url": f"{base}/tariffs"},
                        *(
                            [{"identifier": "tokens", "role": "SENDER", "url": f"{base}/tokens"}]
                            if sim.offer_tokens_sender
                            else []
                        ),
                        {"identifier": "commands", "role": "SENDER", "url": f"{base}/commands"},
                    ],
                }
            )

        @app.get(f"/ocpi/{version}/credentials")
        async def get_credentials(request: Request):
            if not authorized(request, allow_a=True):
                return deny()
            return _envelope(sim.credentials(sim.my_token or sim.token_a))

        @app.post(f"/ocpi/{version}/credentials")
        @app.put(f"/ocpi/{version}/credentials")
        async def post_credentials(request: Request):
            is_post = request.method == "POST"
            if not authorized(request, allow_a=is_post):
                return deny()
            if is_post and sim.registered:
                return JSONResponse(_envelope(None, 2000, "already registered"), status_code=405)
            if not is_post and not sim.registered:
                return JSONResponse(_envelope(None, 2000, "not registered"), status_code=405)
            body = await record(request)
            try:
                await sim._learn_hub(body["url"], body["token"])
            except Exception as exc:
                return JSONResponse(_envelope(None, 3001, f"cannot use your API: {exc}"), status_code=400)
            sim.hub_roles = sim._roles_of(body)
            sim.my_token = "sim-c-" + uuid.uuid4().hex
            sim.registered = True
            return _envelope(sim.credentials(sim.my_token))

        @app.delete(f"/ocpi/{version}/credentials")
        async def delete_credentials(request: Request):
            if not authorized(request):
                return deny()
            sim.registered = False
            sim.my_token = None
            sim.hub_token = None
            return _envelope()

        # Receivers ------------------------------------------------------------------------------------

        @app.put(emsp + "/locations/{cc}/{pid}/{location_id}")
        async def put_location(cc: str, pid: str, location_id: str, request: Request):
            if not authorized(request):
                return deny()
            body = await record(request)
            if not isinstance(body, dict) or body.get("id") != location_id:
                return JSONResponse(_envelope(None, 2001, "id mismatch"), status_code=400)
            sim.locations[location_id] = body
            return _envelope()

        @app.patch(emsp + "/locations/{cc}/{pid}/{location_id}/{evse_uid}")
        async def patch_evse(cc: str, pid: str, location_id: str, evse_uid: str, request: Request):
            if not authorized(request):
                return deny()
            body = await record(request)
            loc = sim.locations.get(location_id)
            if loc is None:
                return JSONResponse(_envelope(None, 2003, "unknown location"), status_code=404)
            for evse in loc.get("evses", []):
                if evse.get("uid") == evse_uid:
                    evse.update(body or {})
                    return _envelope()
            return JSONResponse(_envelope(None, 2001, "unknown evse"), status_code=404)

        @app.put(emsp + "/sessions/{cc}/{pid}/{session_id}")
        async def put_session(cc: str, pid: str, session_id: str, request: Request):
            if not authorized(request):
                return deny()
            body = await record(request)
            if not isinstance(body, dict) or body.get("id") != session_id:
                return JSONResponse(_envelope(None, 2001, "id mismatch"), status_code=400)
            sim.sessions[session_id] = body
            return _envelope()

        @app.patch(emsp + "/sessions/{cc}/{pid}/{session_id}")
        async def patch_session(cc: str, pid: str, session_id: str, request: Request):
            if not authorized(request):
                return deny()
            body = dict(await record(request) or {})
            current = sim.sessions.get(session_id)
            if current is None:
                return JSONResponse(_envelope(None, 2001, "unknown session"), status_code=404)
            periods = body.pop("charging_periods", None)
            current.update(body)
            if periods and v211:  # 2.1.1 PATCH: a field given replaces the stored one
                current["charging_periods"] = periods
            elif periods:
                current.setdefault("charging_periods", []).extend(periods)
            return _envelope()

        @app.post(emsp + "/cdrs")
        async def post_cdr(request: Request):
            if not authorized(request):
                return deny()
            body = await record(request)
            if not isinstance(body, dict) or "id" not in body:
                return JSONResponse(_envelope(None, 2001, "not a CDR"), status_code=400)
            sim.cdrs.append(body)
            location = f"{sim.base_url}/emsp/{version}/cdrs/{body['id']}"
            return JSONResponse(_envelope(), headers={"Location": location})

        @app.get(emsp + "/cdrs/{cdr_id}")
        async def get_cdr(cdr_id: str, request: Request):
            if not authorized(request):
                return deny()
            for cdr in sim.cdrs:
                if cdr.get("id") == cdr_id:
                    return _envelope(cdr)
            return JSONResponse(_envelope(None, 2001, "unknown cdr"), status_code=404)

        @app.put(emsp + "/tariffs/{cc}/{pid}/{tariff_id}")
        async def put_tariff(cc: str, pid: str, tariff_id: str, request: Request):
            if not authorized(request):
                return deny()
            body = await record(request)
            sim.tariffs[tariff_id] = body
            return _envelope()

        @app.delete(emsp + "/tariffs/{cc}/{pid}/{tariff_id}")
        async def delete_tariff(cc: str, pid: str, tariff_id: str, request: Request):
            if not authorized(request):
                return deny()
            await record(request)
            sim.tariffs.pop(tariff_id, None)
            return _envelope()

        # Senders --------------------------------------------------------------------------------------

        @app.get(emsp + "/tokens")
        async def list_tokens(request: Request):
            if not authorized(request):
                return deny()
            await record(request)
            if not sim.offer_token_list:
                return JSONResponse(_envelope(None, 2000, "no token list here"), status_code=404)
            q = request.query_params
            offset = int(q.get("offset", 0))
            limit = min(int(q.get("limit", sim.token_page_limit)), sim.token_page_limit)
            items = sorted(sim.tokens.values(), key=lambda t: (t["last_updated"], t["uid"], t["type"]))
            if q.get("date_from"):
                items = [t for t in items if t["last_updated"] >= q["date_from"]]
            if q.get("date_to"):
                items = [t for t in items if t["last_updated"] < q["date_to"]]
            page = items[offset : offset + limit]
            headers = {"X-Total-Count": str(len(items)), "X-Limit": str(limit)}
            if offset + len(page) < len(items):
                params: dict[str, int | str] = {"offset": offset + len(page), "limit": limit}
                for key in ("date_from", "date_to"):
                    if q.get(key):
                        params[key] = q[key]
                next_url = str(request.url.replace_query_params(**params))
                headers["Link"] = f'<{next_url}>; rel="next"'
            return JSONResponse(_envelope(page), headers=headers)

        @app.post(emsp + "/tokens/{uid}/authorize")
        async def authorize(uid: str, request: Request):
            if not authorized(request):
                return deny()
            body = await record(request)
            token_type = request.query_params.get("type", "RFID")
            token = sim.tokens.get((uid, token_type))
            if token is None:
                return JSONResponse(_envelope(None, 2004, "unknown token"), status_code=404)
            info: dict[str, Any] = {
                "allowed": sim.authorize_answers.get(uid, "ALLOWED" if token.get("valid") else "BLOCKED"),
            }
            if not v211:  # 2.1.1 AuthorizationInfo: allowed, location, info only
                info.update(token=token, authorization_reference="auth-" + uuid.uuid4().hex[:12])
            if body:
                info["location"] = body
            return _envelope(info)

        @app.post(emsp + "/commands/{command}/{ref}")
        async def command_result(command: str, ref: str, request: Request):
            if not authorized(request):
                return deny()
            body = await record(request)
            sim.command_results[ref] = {"command": command, **(body or {})}
            return _envelope()

        @app.post(emsp + "/chargingprofiles/{ref}")
        async def profile_result(ref: str, request: Request):
            if not authorized(request):
                return deny()
            sim.profile_results[ref] = await record(request) or {}
            return _envelope()

        return app

    # ------------------------------------------------------------------------------------------- client side

    def _hub_url(self, identifier: str) -> str:
        for ep in self.hub_endpoints:
            if ep.get("identifier") == identifier:
                return ep["url"]
        raise LookupError(f"the hub offers no {identifier} endpoint")

    def _hub_cpo(self) -> tuple[str, str]:
        role = next((r for r in self.hub_roles if r.get("role") == "CPO"), None)
        if role is None:
            raise LookupError("the hub has no CPO role")
        return role["country_code"], role["party_id"]

    def _roles_of(self, credentials: dict[str, Any]) -> list[dict[str, Any]]:
        """The hub's roles in a credentials object (2.1.1: its one party, taken as a CPO)."""
        if self.version == VERSION_211:
            keys = ("country_code", "party_id", "business_details")
            return [{"role": "CPO", **{k: credentials.get(k) for k in keys}}]
        return list(credentials.get("roles", []))

    def routing(self, to_cc: str | None = None, to_pid: str | None = None) -> dict[str, str]:
        """The routing headers (and request ids) of a request to the hub; none in 2.1.1 (it has neither)."""
        if self.version == VERSION_211:
            return {}
        if to_cc is None or to_pid is None:
            to_cc, to_pid = self._hub_cpo()
        return {
            "OCPI-from-country-code": self.country_code,
            "OCPI-from-party-id": self.party_id,
            "OCPI-to-country-code": to_cc,
            "OCPI-to-party-id": to_pid,
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": str(uuid.uuid4()),
        }

    async def _call(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": _auth(token, self.version), **kwargs.pop("headers", {})}
        async with self.http() as http:
            return await http.request(method, url, headers=headers, **kwargs)

    def http(self) -> httpx.AsyncClient:
        """An HTTP client that reaches the hub the way this simulator does (its transport, its timeout)."""
        return httpx.AsyncClient(timeout=self.hub_timeout, transport=self.transport)

    async def _learn_hub(self, versions_url: str, token: str) -> None:
        versions = (await self._call("GET", versions_url, token)).json()["data"]
        url = next(v["url"] for v in versions if v["version"] == self.version)
        details = (await self._call("GET", url, token)).json()["data"]
        self.hub_versions_url = versions_url
        self.hub_endpoints = details["endpoints"]
        self.hub_token = token

    async def register(self, hub_versions_url: str, token_a: str) -> dict[str, Any]:
        """Register with the hub (we initiate): versions with token A, POST our credentials with a new
        token B, keep the token C the hub answers. Returns the hub's credentials."""
        await self._learn_hub(hub_versions_url, token_a)
        token_b = "sim-b-" + uuid.uuid4().hex
        self.my_token = token_b
        response = await self._call(
            "POST", self._hub_url("credentials"), token_a, json=self.credentials(token_b)
        )
        body = response.json()
        if response.status_code != 200 or body.get("status_code") != 1000:
            self.my_token = None
            raise RuntimeError(f"registration failed: HTTP {response.status_code} {body}")
        self.hub_token = body["data"]["token"]
        self.hub_roles = self._roles_of(body["data"])
        self.registered = True
        return body["data"]

    async def rotate(self) -> dict[str, Any]:
        """PUT new credentials to the hub (new token for the hub to use; the hub answers a new one)."""
        assert self.hub_token
        new_b = "sim-b-" + uuid.uuid4().hex
        old_my = self.my_token
        self.my_token = new_b
        response = await self._call(
            "PUT", self._hub_url("credentials"), self.hub_token, json=self.credentials(new_b)
        )
        body = response.json()
        if response.status_code != 200 or body.get("status_code") != 1000:
            self.my_token = old_my
            raise RuntimeError(f"rotation failed: HTTP {response.status_code} {body}")
        self.hub_token = body["data"]["token"]
        return body["data"]

    async def unregister(self) -> int:
        assert self.hub_token
        response = await self._call("DELETE", self._hub_url("credentials"), self.hub_token)
        self.registered = False
        return response.status_code

    def make_token(
        self, uid: str, *, whitelist: str = "ALLOWED", valid: bool = True, token_type: str = "RFID"
    ) -> dict[str, Any]:
        """A Token of this eMSP in its version's form (2.1.1: ``auth_id``, no country_code/party_id)."""
        if self.version == VERSION_211:
            return {
                "uid": uid,
                "type": token_type,
                "auth_id": f"{self.country_code}-{self.party_id}-C{uid[-8:]}",
                "issuer": self.name,
                "valid": valid,
                "whitelist": whitelist,
                "last_updated": _now(),
            }
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": uid,
            "type": token_type,
            "contract_id": f"{self.country_code}-{self.party_id}-C{uid[-8:]}",
            "issuer": self.name,
            "valid": valid,
            "whitelist": whitelist,
            "last_updated": _now(),
        }

    async def push_token(self, token: dict[str, Any], *, to: tuple[str, str] | None = None) -> httpx.Response:
        """PUT a token to the hub's tokens Receiver (and remember it for real-time authorization)."""
        self.tokens[(token["uid"], token["type"])] = token
        cc, pid = token.get("country_code", self.country_code), token.get("party_id", self.party_id)
        url = f"{self._hub_url('tokens')}/{cc}/{pid}/{token['uid']}"
        return await self._call(
            "PUT",
            url,
            self.hub_token or "",
            json=token,
            params={} if self.version == VERSION_211 else {"type": token["type"]},  # 2.1.1 paths: no type
            headers=self.routing(*(to or (None, None))),
        )

    async def command(
        self, command: str, body: dict[str, Any], *, to: tuple[str, str] | None = None
    ) -> tuple[str, dict]:
        """POST a command to the hub; returns (reference in our response_url, the CommandResponse)."""
        ref = uuid.uuid4().hex
        body = {"response_url": f"{self.base_url}/emsp/{self.version}/commands/{command}/{ref}", **body}
        response = await self._call(
            "POST",
            f"{self._hub_url('commands')}/{command}",
            self.hub_token or "",
            json=body,
            headers=self.routing(*(to or (None, None))),
        )
        payload = response.json()
        if response.status_code != 200 or payload.get("status_code") != 1000:
            raise RuntimeError(f"command refused: HTTP {response.status_code} {payload}")
        return ref, payload["data"]

    async def start_session(
        self, location_id: str, evse_uid: str, connector_id: str | None, token_uid: str, **kw: Any
    ) -> tuple[str, dict]:
        app_user = "OTHER" if self.version == VERSION_211 else "APP_USER"
        token = self.tokens.get((token_uid, "RFID")) or self.make_token(token_uid, token_type=app_user)
        body = {"token": token, "location_id": location_id, "evse_uid": evse_uid}
        if connector_id and self.version != VERSION_211:  # a 2.1.1 StartSession names no connector
            body["connector_id"] = connector_id
        return await self.command("START_SESSION", body, **kw)

    async def stop_session(self, session_id: str, **kw: Any) -> tuple[str, dict]:
        return await self.command("STOP_SESSION", {"session_id": session_id}, **kw)

    def received(self) -> dict[str, Any]:
        """What the simulator holds, for the demo: counts and the CDRs' ids and totals."""
        return {
            "registered": self.registered,
            "locations": len(self.locations),
            "sessions": len(self.sessions),
            "tariffs": len(self.tariffs),
            "cdrs": [
                {"id": c.get("id"), "total_cost": c.get("total_cost"), "total_energy": c.get("total_energy")}
                for c in self.cdrs
            ],
        }

    def profile_response_url(self) -> tuple[str, str]:
        """(reference, response_url) for a ChargingProfiles request; results land in ``profile_results``."""
        ref = uuid.uuid4().hex
        return ref, f"{self.base_url}/emsp/{self.version}/chargingprofiles/{ref}"

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Poll ``predicate()`` until true (tests and demo)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("condition not reached in time")
            await asyncio.sleep(0.05)

    async def fetch_all(
        self, module: str, params: dict[str, Any] | None = None, *, to: tuple[str, str] | None = None
    ) -> list[dict]:
        """GET a hub Sender list and follow ``Link: rel=next`` to the end."""
        url: str | None = self._hub_url(module)
        items: list[dict] = []
        query = params
        while url:
            response = await self._call(
                "GET", url, self.hub_token or "", params=query, headers=self.routing(*(to or (None, None)))
            )
            response.raise_for_status()
            items.extend(response.json()["data"])
            url = response.links.get("next", {}).get("url")
            query = None
        return items


async def run_emsp(
    hub_versions_url: str | None = None,
    token_a: str | None = None,
    *,
    port: int = 0,
    country_code: str = "DE",
    party_id: str = "EMS",
    name: str = "Simulated eMSP",
    version: str = VERSION,
) -> EmspSimulator:
    """Start a simulator on ``port`` (free one when 0) and, given the hub's versions URL and a token A from
    ``evhub partners invite``, register it with the hub through the real handshake. ``await sim.stop()``."""
    sim = EmspSimulator(country_code=country_code, party_id=party_id, name=name, version=version)
    await sim.start(port)
    if hub_versions_url and token_a:
        try:
            await sim.register(hub_versions_url, token_a)
        except Exception:
            await sim.stop()
            raise
    return sim
