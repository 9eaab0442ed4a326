"""Tokens pull: the hub GETs an eMSP's token list from its tokens Sender interface and stores every token as
the tokens Receiver's PUT does (:func:`ocpi.modules.tokens.store_token`).

* **When**: shortly after a partner registers (:meth:`TokensPuller.kick`, called by the credentials handshake)
  and then by the ``ocpi-tokens-pull`` scheduler job for every partner whose last pull is older than
  ``interval``. The first pull after a registration is complete; later ones ask ``date_from`` = start of the
  previous successful pull minus ``overlap`` (tokens changed since).
* **Pagination**: ``limit`` on the first request, then the ``Link: <...>; rel="next"`` URL as given (only on
  the endpoint's own host, so our token never goes elsewhere), at most ``max_pages`` pages.
* **Ownership**: a token is stored only when its ``country_code``/``party_id`` is one of the partner's roles
  (owned by that role's party); tokens of other parties, tokens owned by another eMSP, and invalid objects are
  skipped. A stored token updated later than the pulled copy (a newer PUT/PATCH) is kept.
* **Tolerance**: a partner without a tokens Sender endpoint is skipped; one answering HTTP 404/405/501 or an
  OCPI error is treated as "no token list" until the next interval; timeouts and 5xx are retried at the next
  check. Each page is committed on its own, so an interrupted pull keeps what it stored (and the next pull
  starts again from the previous ``date_from``).
* **OCPI 2.1.1** partners (``partner.version``): the same GETs with the raw token and no routing headers; a 2.1.1
  Token names no party, so each is read as a token of the partner's one party
  (:func:`ocpi.v211.objects.token_from_211`) and stored the same way.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from sqlalchemy import or_, select

from kernel.db.engine import Database
from kernel.domain.tokens import OcpiToken
from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.timeutil import format_rfc3339, utcnow
from ocpi import client
from ocpi.modules.tokens import store_token
from ocpi.routing import hosted_cpos, routing_headers
from ocpi.v211 import VERSION_211
from ocpi.v211.objects import token_from_211

log = logging.getLogger(__name__)

_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?rel\s*=\s*"?next"?', re.IGNORECASE)
UNSUPPORTED_HTTP = (404, 405, 501)


def next_link(headers: dict[str, str]) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    raw = headers.get("link") or headers.get("Link")
    if not raw:
        return None
    match = _NEXT.search(raw)
    return match.group(1).strip() if match else None


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc) == (pb.scheme, pb.netloc)


@dataclass(frozen=True)
class _Target:
    """Where and how to pull one partner's tokens."""

    url: str
    token: str
    headers: dict[str, str]
    owners: dict[tuple[str, str], int]  # (country_code, party_id) upper-cased -> party pk
    version: str = "2.2.1"
    party: tuple[str, str] | None = None  # 2.1.1: the partner's one party, owner of every token it lists


@dataclass
class PullResult:
    partner_id: int
    supported: bool = True  # False: the partner offers no token list
    stored: int = 0
    skipped: int = 0
    pages: int = 0
    complete: bool = False  # every page was read
    error: str | None = None


class TokensPuller:
    """The OCPI component's tokens puller (``platform.tokens_pull``, kicked after a partner registers)."""

    def __init__(
        self,
        db: Database,
        *,
        interval: timedelta = timedelta(hours=1),
        overlap: timedelta = timedelta(minutes=5),
        timeout: float = 10.0,
        page_limit: int = 100,
        max_pages: int = 10_000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.transport = transport  # None: the network (see ocpi.client)
        self.interval = interval
        self.overlap = overlap
        self.timeout = timeout
        self.page_limit = page_limit
        self.max_pages = max_pages
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running: set[int] = set()

    async def due(self) -> list[int]:
        """Registered partners with a tokens Sender whose last pull is older than ``interval`` (or never)."""
        limit = utcnow() - self.interval
        async with self.db.session() as db_session:
            partners = (
                await db_session.scalars(
                    select(OcpiPartner)
                    .where(
                        OcpiPartner.status == PartnerStatus.REGISTERED,
                        or_(OcpiPartner.tokens_pulled_at.is_(None), OcpiPartner.tokens_pulled_at < limit),
                    )
                    .order_by(OcpiPartner.id)
                )
            ).all()
            return [p.id for p in partners if p.endpoint("tokens", "SENDER")]

    async def run_due(self) -> int:
        """The scheduler job: pull every due partner; returns the number of tokens stored."""
        stored = 0
        for partner_id in await self.due():
            try:
                stored += (await self.pull(partner_id)).stored
            except Exception:
                log.exception("tokens pull from partner %s failed", partner_id)
        return stored

    def kick(self, partner_id: int, delay: float = 0.5) -> None:
        """Pull from a partner that just registered, once its registration is committed (the scheduler job
        catches up if this does not happen, e.g. the process stops)."""

        async def later() -> None:
            await asyncio.sleep(delay)
            try:
                async with self.db.session() as db_session:
                    partner = await db_session.get(OcpiPartner, partner_id)
                    if partner is None or partner.status != PartnerStatus.REGISTERED:
                        return
                    if partner.tokens_pulled_at is not None:
                        return
                await self.pull(partner_id)
            except Exception:
                log.exception("tokens pull after the registration of partner %s failed", partner_id)

        try:
            task = asyncio.get_running_loop().create_task(later())
        except RuntimeError:  # no loop (CLI): the scheduler job will do it
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _target(self, partner_id: int) -> _Target | None:
        async with self.db.session() as db_session:
            partner = await db_session.get(OcpiPartner, partner_id)
            if partner is None or partner.status != PartnerStatus.REGISTERED or not partner.outgoing_token:
                return None
            url = partner.endpoint("tokens", "SENDER")
            if url is None:
                return None
            owners = {(r.country_code.upper(), r.party_id.upper()): r.party_pk for r in partner.roles}
            headers: dict[str, str] = {}
            emsp = next(
                (r for r in partner.roles if r.role == "EMSP"), partner.roles[0] if partner.roles else None
            )
            cpos = [
                c
                for c in await hosted_cpos(db_session)
                if partner.allowed_cpo_ids is None or c.id in partner.allowed_cpo_ids
            ]
            if partner.version == VERSION_211:  # no routing headers; the tokens name no party
                party = (emsp.country_code, emsp.party_id) if emsp is not None else None
                return _Target(url, partner.outgoing_token, {}, owners, VERSION_211, party)
            if emsp is not None and cpos:
                headers = routing_headers(
                    cpos[0].country_code, cpos[0].party_id, emsp.country_code, emsp.party_id
                )
            return _Target(url, partner.outgoing_token, headers, owners)

    async def pull(self, partner_id: int, *, full: bool = False) -> PullResult:
        """GET the partner's whole token list (or what changed since the last pull) and store it."""
        result = PullResult(partner_id)
        if partner_id in self._running:
            result.error = "a pull is already running"
            return result
        target = await self._target(partner_id)
        if target is None:
            result.supported = False
            return result
        self._running.add(partner_id)
        try:
            await self._pull(result, target, full)
        finally:
            self._running.discard(partner_id)
        return result

    async def _pull(self, result: PullResult, target: _Target, full: bool) -> None:
        base = target.url
        started = utcnow()
        async with self.db.session() as db_session:
            partner = await db_session.get(OcpiPartner, result.partner_id)
            previous = partner.tokens_pulled_at if partner else None
        first_page: dict[str, Any] = {"limit": self.page_limit}
        if previous is not None and not full:
            first_page["date_from"] = format_rfc3339(previous - self.overlap)
        params: dict[str, Any] | None = first_page  # the next pages: the Link URL as given
        url: str | None = base
        seen: set[str] = set()
        while url is not None and result.pages < self.max_pages:
            try:
                reply = await client.request(
                    "GET",
                    url,
                    target.token,
                    params=params,
                    headers=target.headers,
                    timeout=self.timeout,
                    transport=self.transport,
                    version=target.version,
                )
            except httpx.HTTPError as exc:
                result.error = f"GET {url}: {type(exc).__name__} {exc}"
                log.warning("tokens pull from partner %s: %s", result.partner_id, result.error)
                return
            if not reply.ok or not isinstance(reply.data, list):
                result.error = (
                    f"GET {url}: HTTP {reply.http_status} OCPI {reply.status_code} {reply.status_message or ''}"
                ).strip()
                if result.pages == 0 and (
                    reply.http_status in UNSUPPORTED_HTTP or 200 <= reply.http_status < 300
                ):
                    # no token list at this partner: tolerated, asked again after the interval
                    result.supported = False
                    log.info("partner %s offers no token list: %s", result.partner_id, result.error)
                    await self._mark(result.partner_id, started)
                else:
                    log.warning("tokens pull from partner %s: %s", result.partner_id, result.error)
                return
            result.pages += 1
            await self._store_page(result, reply.data, target)
            seen.add(url)
            following = next_link(reply.headers)
            if following and (not _same_origin(following, base) or following in seen):
                log.warning("tokens pull from partner %s: ignoring Link %s", result.partner_id, following)
                following = None
            url, params = following, None
        result.complete = url is None
        if result.complete:
            await self._mark(result.partner_id, started)
        log.info(
            "tokens pull from partner %s: %s stored, %s skipped, %s pages",
            result.partner_id,
            result.stored,
            result.skipped,
            result.pages,
        )

    async def _store_page(self, result: PullResult, items: list[Any], target: _Target) -> None:
        owners = target.owners
        async with self.db.session() as db_session:
            for item in items:
                try:
                    if target.version == VERSION_211:
                        if target.party is None or not isinstance(item, dict):
                            raise ValueError("no party to own a 2.1.1 token")
                        item = token_from_211(item, *target.party)
                    body = OcpiToken.model_validate(item)
                except (ValidationError, ValueError):
                    result.skipped += 1
                    continue
                party_pk = owners.get((body.country_code.upper(), body.party_id.upper()))
                if party_pk is None:
                    result.skipped += 1
                    continue
                try:
                    async with db_session.begin_nested():
                        stored = await store_token(db_session, party_pk, body, keep_newer=True)
                except Exception:  # e.g. a concurrent insert of the same token: the next pull catches up
                    log.debug("could not store pulled token %s", body.uid, exc_info=True)
                    stored = None
                if stored is None:
                    result.skipped += 1
                else:
                    result.stored += 1

    async def wait_idle(self) -> None:
        """Wait until the pulls started by :meth:`kick` have finished (tests; an orderly hand-over)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _mark(self, partner_id: int, started: Any) -> None:
        async with self.db.session() as db_session:
            partner = await db_session.get(OcpiPartner, partner_id)
            if partner is not None:
                partner.tokens_pulled_at = started

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
