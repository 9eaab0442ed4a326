"""The fleet's tokens: the list, adding a token, blocking and unblocking, assigning a driver or vehicle, and the
monthly spending limit. A token of another fleet is a 404. A uid is a CiString: a token is added once under
any casing, and not when another issuer holds its uid (:mod:`kernel.token_uids`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Fleet, Party, PartyRole, Token
from kernel.models.portal import FleetDriver, FleetVehicle
from kernel.money import round_amount
from kernel.timeutil import utcnow
from kernel.token_uids import UidTaken, claim
from kernel.validation import ascii_int
from portal.driver_pages import drivers_and_vehicles
from portal.forms import clean, parse_amount
from portal.login import Principal
from portal.page_kit import PageKit, back


async def _fleet_token(db_session: AsyncSession, manager: Principal, token_id: int) -> Token:
    """The token ``token_id``, locked for update, when it belongs to the manager's fleet (else a 404)."""
    token = await db_session.get(Token, token_id, with_for_update=True)
    if token is None or token.fleet_id != manager.fleet_id:
        raise HTTPException(404, "no such token")
    return token


def _row_id(raw: str) -> int:
    """A row id from a form field; 0 (no such row) when it is not a number."""
    return ascii_int(raw) or 0


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    state = kit.state

    @router.get("/tokens", response_class=HTMLResponse)
    async def tokens_page(request: Request, msg: str | None = None) -> Response:
        manager = await kit.require_manager(request)
        async with state.db.session() as db_session:
            tokens = (
                (
                    await db_session.execute(
                        select(Token).where(Token.fleet_id == manager.fleet_id).order_by(Token.uid)
                    )
                )
                .scalars()
                .all()
            )
            drivers, vehicles = await drivers_and_vehicles(db_session, manager.fleet_id)
        return kit.page(
            request,
            manager,
            "tokens.html",
            {"tokens": tokens, "drivers": drivers, "vehicles": vehicles, "msg": msg},
        )

    @router.post("/tokens")
    async def add_token(request: Request) -> Response:
        manager = await kit.require_manager(request)
        form = await kit.posted_form(request, manager)
        uid = clean(form.get("uid"), 36)
        if not uid:
            return back("/tokens", "A token needs its UID.")
        async with state.db.session() as db_session:
            fleet = await db_session.get(Fleet, manager.fleet_id)
            assert fleet is not None
            party = await db_session.get(Party, fleet.emsp_id) if fleet.emsp_id else None
            if party is None:
                party = (
                    await db_session.execute(select(Party).where(Party.role == PartyRole.HUB).limit(1))
                ).scalar_one_or_none()
            cc, pid = (party.country_code, party.party_id) if party else ("ZZ", "EVH")
            try:
                await claim(db_session, cc, pid, uid, source="portal")
            except UidTaken:
                return back("/tokens", f"Token {uid} is issued by another party; it cannot be added here.")
            exists = await db_session.execute(
                select(Token.id).where(
                    Token.country_code == cc,
                    Token.party_id == pid,
                    Token.uid_key == uid.upper(),
                    Token.type == "RFID",
                )
            )
            if exists.first() is not None:
                return back("/tokens", f"Token {uid} already exists.")
            db_session.add(
                Token(
                    country_code=cc,
                    party_id=pid,
                    uid=uid,
                    type="RFID",
                    contract_id=clean(form.get("contract_id"), 36) or f"{cc}-{pid}-{uid}"[:36],
                    visual_number=clean(form.get("visual_number"), 64),
                    issuer=fleet.name[:64],
                    emsp_id=fleet.emsp_id,
                    fleet_id=fleet.id,
                    valid=True,
                    whitelist="ALLOWED",
                    last_updated=utcnow(),
                )
            )
        return back("/tokens", f"Token {uid} added.")

    async def set_valid(request: Request, token_id: int, valid: bool) -> Response:
        manager = await kit.require_manager(request)
        await kit.posted_form(request, manager)
        async with state.db.session() as db_session:
            token = await _fleet_token(db_session, manager, token_id)
            token.valid = valid
            token.last_updated = utcnow()
            uid = token.uid
        return back("/tokens", f"Token {uid} {'unblocked' if valid else 'blocked'}.")

    @router.post("/tokens/{token_id}/block")
    async def block_token(request: Request, token_id: int) -> Response:
        return await set_valid(request, token_id, False)

    @router.post("/tokens/{token_id}/unblock")
    async def unblock_token(request: Request, token_id: int) -> Response:
        return await set_valid(request, token_id, True)

    @router.post("/tokens/{token_id}/assign")
    async def assign_token(request: Request, token_id: int) -> Response:
        manager = await kit.require_manager(request)
        form = await kit.posted_form(request, manager)
        async with state.db.session() as db_session:
            token = await _fleet_token(db_session, manager, token_id)
            if "driver_id" in form:
                driver = None
                if form["driver_id"]:
                    driver = await db_session.get(FleetDriver, _row_id(form["driver_id"]))
                    if driver is None or driver.fleet_id != manager.fleet_id:
                        raise HTTPException(404, "no such driver")
                token.driver_name = driver.name if driver else None
                token.driver_email = driver.email if driver else None
            if "vehicle_id" in form:
                vehicle = None
                if form["vehicle_id"]:
                    vehicle = await db_session.get(FleetVehicle, _row_id(form["vehicle_id"]))
                    if vehicle is None or vehicle.fleet_id != manager.fleet_id:
                        raise HTTPException(404, "no such vehicle")
                token.vehicle = vehicle.label if vehicle else None
            token.last_updated = utcnow()
            uid = token.uid
        return back("/tokens", f"Token {uid} assigned.")

    @router.post("/tokens/{token_id}/limit")
    async def set_limit(request: Request, token_id: int) -> Response:
        manager = await kit.require_manager(request)
        form = await kit.posted_form(request, manager)
        try:
            amount = parse_amount(form.get("monthly_limit", ""))
        except ValueError as exc:
            return back("/tokens", str(exc))
        async with state.db.session() as db_session:
            token = await _fleet_token(db_session, manager, token_id)
            token.monthly_limit = round_amount(amount, manager.currency) if amount is not None else None
            token.limit_currency = manager.currency if amount is not None else None
            token.last_updated = utcnow()
            uid = token.uid
        text = f"{amount} {manager.currency}" if amount is not None else "none"
        return back("/tokens", f"Monthly limit of {uid}: {text}.")

    return router
