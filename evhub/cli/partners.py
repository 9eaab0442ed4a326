"""``evhub partners ...`` (OCPI roaming partners) and ``evhub outbox ...`` (what the hub still has to deliver).

Partner and message ids may be given in full or as a unique prefix (:mod:`evhub.cli._lookup`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from evhub import lifecycle
from evhub.cli._common import console, fail, print_json, run_with_db, settings, table
from evhub.cli._lookup import resolve_prefix
from kernel.db.engine import Database

if TYPE_CHECKING:
    from kernel.outbox import OutboxRow

partners_app = typer.Typer(help="OCPI roaming partners (eMSPs; OCPI 2.2.1 or 2.1.1).", no_args_is_help=True)
outbox_app = typer.Typer(
    help="The durable outbox: OCPI pushes and emails waiting or delivered.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
PartnerId = Annotated[str, typer.Argument(help="Partner id (or a unique prefix)")]
PartnerRef = Annotated[str, typer.Argument(help="Partner name, id or a unique id prefix")]


async def _partner_id(db_session: AsyncSession, given: str) -> int:
    from kernel.models.roaming import OcpiPartner

    return int(await resolve_prefix(db_session, OcpiPartner.id, given, "partner"))


async def _partner_ref(db_session: AsyncSession, given: str) -> int:
    """A partner named by its name (any case, when exactly one partner has it) or by its id or a prefix."""
    from sqlalchemy import func

    from kernel.models.roaming import OcpiPartner

    named = (
        await db_session.scalars(
            select(OcpiPartner.id).where(func.lower(OcpiPartner.name) == given.strip().lower()).limit(2)
        )
    ).all()
    if len(named) == 1:
        return int(named[0])
    if len(named) > 1 and not given.strip().isdigit():
        fail(f"several partners are named {given!r}: give the partner id")
    return await _partner_id(db_session, given)


def _why(row: OutboxRow) -> str:
    """What the last column of ``outbox list`` says: why a row is parked, what superseded it, its last error."""
    if row.status == "parked":
        return row.parked_reason or ""
    if row.status == "superseded":
        return f"superseded by {row.result.get('superseded_by', '?')}"
    return row.last_error or ""


def _age(seconds: float) -> str:
    if not seconds:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


async def _cpo_ids(db_session: AsyncSession, keys: list[str]) -> list[int]:
    from evhub.provisioning import find_party
    from kernel.models import PartyRole

    return [(await find_party(db_session, key, PartyRole.CPO)).id for key in keys]


@partners_app.command("invite")
def partners_invite(
    name: Annotated[str, typer.Argument(help="Partner's name")],
    cpo: Annotated[
        list[str] | None, typer.Option(help="Limit the partner to these CPOs (COUNTRY*PARTY); repeat")
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            help="The roles the partner may register (COUNTRY*PARTY[:ROLE], eMSP by default; required); repeat"
        ),
    ] = None,
) -> None:
    """Issue a token A for a partner that will register with the hub (shown once)."""
    from ocpi.credentials import HandshakeError
    from ocpi.partners import invite_partner, role_key

    cfg = settings()
    if not name.strip():
        fail("partner name must not be empty")
    if not role:
        fail("name the roles the partner may register: --role COUNTRY*PARTY[:ROLE] (repeat for several)")
    try:
        roles = [role_key(r) for r in role]
    except ValueError as exc:
        fail(str(exc))

    async def go(db: Database) -> None:
        allowed = None
        if cpo:
            async with db.session() as db_session:
                allowed = await _cpo_ids(db_session, cpo)
        try:
            invitation = await invite_partner(db, cfg.public_url, name, allowed_cpo_ids=allowed, roles=roles)
        except HandshakeError as exc:
            fail(f"invitation refused: {exc}")
        console.print(f"partner {invitation.partner_id} ({name}) invited")
        console.print(f"versions URL: {invitation.versions_url}")
        console.print(f"token A (give it to the partner; it is not shown again): {invitation.token_a}")

    run_with_db(go)


@partners_app.command("register")
def partners_register(
    url: Annotated[str, typer.Argument(help="The partner's OCPI versions URL")],
    token_a: Annotated[str, typer.Argument(help="The token A the partner gave us")],
) -> None:
    """Register the hub with a partner (OCPI credentials handshake, token A -> B -> C)."""
    from evhub.provisioning import check_url
    from ocpi.credentials import HandshakeError
    from ocpi.partners import register_partner

    cfg = settings()

    async def go(db: Database) -> None:
        versions_url = check_url(url, "versions URL")
        try:
            partner = await register_partner(db, cfg.public_url, versions_url, token_a)
        except HandshakeError as exc:
            fail(f"registration failed: {exc}")
        console.print(f"registered with partner {partner.id} ({partner.name}), OCPI {partner.version}")

    run_with_db(go)


@partners_app.command("list")
def partners_list(as_json: JsonOption = False) -> None:
    """List partners with their registration and delivery state."""
    from dataclasses import asdict

    from ocpi.partners import list_partners

    async def go(db: Database) -> None:
        rows = await list_partners(db)
        if as_json:
            print_json([asdict(p) for p in rows])
            return
        table(
            "OCPI partners",
            ["id", "name", "status", "version", "roles", "last success", "last error"],
            [
                [
                    p.id,
                    p.name,
                    p.status,
                    p.version,
                    ", ".join(p.roles),
                    p.last_success_at.isoformat(timespec="seconds") if p.last_success_at else "",
                    p.last_error or "",
                ]
                for p in rows
            ],
        )

    run_with_db(go)


@partners_app.command("update")
def partners_update(
    partner: PartnerId,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    cpo: Annotated[
        list[str] | None, typer.Option(help="Limit the partner to these CPOs (COUNTRY*PARTY); repeat")
    ] = None,
    all_cpos: Annotated[bool, typer.Option("--all-cpos", help="Let the partner see every CPO")] = False,
) -> None:
    """Rename a partner or change which CPOs' locations and tariffs it sees."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            p = await lifecycle.get_partner(db_session, await _partner_id(db_session, partner))
            allowed = await _cpo_ids(db_session, cpo) if cpo else None
            await lifecycle.update_partner(
                db_session, p, name=name, allowed_cpo_ids=allowed, all_cpos=all_cpos
            )
            scope = "every CPO" if p.allowed_cpo_ids is None else f"{len(p.allowed_cpo_ids)} CPO(s)"
        console.print(f"updated partner {p.id} ({p.name}): sees {scope}")

    run_with_db(go)


@partners_app.command("unregister")
def partners_unregister(
    partner: PartnerId,
    notify: Annotated[
        bool, typer.Option(help="Tell the partner (OCPI DELETE credentials, best effort)")
    ] = True,
) -> None:
    """Suspend a partner: forget its tokens, so it can no longer call the hub and nothing is pushed to it."""
    from ocpi.credentials import unregister

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            p = await lifecycle.get_partner(db_session, await _partner_id(db_session, partner))
            partner_id, name = p.id, p.name
        await unregister(db, partner_id, notify=notify)
        console.print(
            f"unregistered partner {partner_id} ({name}): its tokens no longer work; "
            "invite it again to resume (`evhub partners invite`)"
        )

    run_with_db(go)


@partners_app.command("remove")
def partners_remove(partner: PartnerId) -> None:
    """Remove a partner that is invited or unregistered (a registered one: unregister it first)."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            p = await lifecycle.get_partner(db_session, await _partner_id(db_session, partner))
            label = f"{p.id} ({p.name})"
            await lifecycle.remove_partner(db_session, p)
        console.print(f"removed partner {label}")

    run_with_db(go)


@partners_app.command("health")
def partners_health(partner: PartnerRef, as_json: JsonOption = False) -> None:
    """Whether a partner is healthy, and why not (parked pushes, a backlog, failing deliveries)."""
    from ocpi.partners import partner_health

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            partner_id = await _partner_ref(db_session, partner)
        health = await partner_health(db, partner_id)
        assert health is not None
        if as_json:
            print_json(health)
            return
        box = health["outbox"]
        state = "healthy" if health["healthy"] else "NOT healthy"
        console.print(f"partner {health['id']} ({health['name']}): {state}")
        for reason in health["reasons"]:
            console.print(f"  - {reason}")
        console.print(
            f"outbox: {box['pending']} pending, {box['parked']} parked, {box['delivered']} delivered, "
            f"{box['superseded']} superseded"
        )

    run_with_db(go)


@partners_app.command("resync")
def partners_resync(partner: PartnerRef) -> None:
    """Bring a partner up to date: what is parked for it is sent again as the current state of each object
    (tariffs, locations with their EVSEs, sessions; CDRs and command results are retried as they are)."""
    from ocpi.partners import resync

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            partner_id = await _partner_ref(db_session, partner)
        report = await resync(db, partner_id)
        console.print(
            f"partner {partner_id}: {report.replaced} object(s) queued again as their current state "
            f"({report.superseded} parked or waiting message(s) superseded), {report.released} message(s) "
            "queued again"
        )

    run_with_db(go)


OUTBOX_STATUSES = ("pending", "delivered", "parked", "superseded")


@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        str | None, typer.Option(help="pending, delivered, parked or superseded ('dead': parked)")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="ocpi or email")] = None,
    partner: Annotated[
        str | None, typer.Option(help="Only this OCPI partner (name, id or id prefix)")
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest N")] = 50,
    by_partner: Annotated[
        bool, typer.Option("--by-partner", help="Only the backlog per partner (with --json: that list)")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The backlog per OCPI partner (pending, parked, oldest pending, last error), then the messages, newest
    first; a parked message shows why it was parked."""
    from dataclasses import asdict

    from kernel.outbox import list_messages, outbox_stats
    from ocpi.partners import partner_backlogs

    if status == "dead":
        status = "parked"
    if status and status not in OUTBOX_STATUSES:
        fail(f"--status {status!r}: expected {', '.join(OUTBOX_STATUSES)}")
    if limit < 1:
        fail(f"--limit {limit}: expected at least 1")
    if partner is not None and channel not in (None, "ocpi"):
        fail("--partner is an OCPI partner: it goes with --channel ocpi (or no --channel)")

    async def go(db: Database) -> None:
        partner_id: int | None = None
        if partner is not None:
            async with db.session() as db_session:
                partner_id = await _partner_ref(db_session, partner)
        backlogs = await partner_backlogs(db, partner_id) if channel in (None, "ocpi") else []
        names = {str(b.id): b.name for b in await partner_backlogs(db)}
        if by_partner and as_json:
            print_json([asdict(b) for b in backlogs])
            return
        rows = await list_messages(
            db,
            status=status,
            channel="ocpi" if partner_id is not None else channel,
            destination=str(partner_id) if partner_id is not None else None,
            limit=limit,
        )
        if as_json:
            print_json(
                [
                    asdict(r) | {"partner": names.get(r.destination) if r.channel == "ocpi" else None}
                    for r in rows
                ]
            )
            return
        if backlogs:
            table(
                "Outbox by partner",
                ["partner", "name", "status", "pending", "parked", "oldest pending", "last error"],
                [
                    [
                        b.id,
                        b.name,
                        b.status,
                        b.pending,
                        b.parked,
                        _age(b.oldest_pending_seconds),
                        (b.parked_reason or b.last_error or "")[:80],
                    ]
                    for b in backlogs
                ],
            )
        if by_partner:
            return
        table(
            "Outbox",
            ["id", "channel", "destination", "what", "status", "attempts", "created", "last error / parked"],
            [
                [
                    r.id,
                    r.channel,
                    f"{names.get(r.destination, r.destination)} ({r.destination})"
                    if r.channel == "ocpi"
                    else r.destination,
                    r.summary,
                    r.status,
                    r.attempts,
                    r.created_at.isoformat(timespec="seconds"),
                    _why(r)[:100],
                ]
                for r in rows
            ],
        )
        stats = await outbox_stats(
            db,
            channel="ocpi" if partner_id is not None else channel,
            destination=str(partner_id) if partner_id is not None else None,
        )
        console.print("totals: " + ", ".join(f"{k} {v}" for k, v in stats.items() if k != "oldest_pending"))

    run_with_db(go)


@outbox_app.command("retry")
def outbox_retry(
    message_id: Annotated[
        str | None, typer.Argument(help="One message id or unique prefix (default: every parked message)")
    ] = None,
    partner: Annotated[
        str | None, typer.Option(help="Only this OCPI partner's parked messages (name, id or id prefix)")
    ] = None,
) -> None:
    """Queue parked messages again. An OCPI push of a location, session or tariff is not replayed: its object is
    re-synced (the current state is sent, the parked message and those behind it are superseded); a CDR, a
    command result or an email is retried as it is."""
    from kernel.models import OutboxMessage, OutboxStatus
    from kernel.outbox import retry_parked
    from ocpi.partners import resync
    from ocpi.push.resync import ResyncReport

    async def go(db: Database) -> None:
        one: OutboxMessage | None = None
        partner_ids: list[int] = []
        async with db.session() as db_session:
            if message_id is not None:
                found = int(await resolve_prefix(db_session, OutboxMessage.id, message_id, "outbox message"))
                one = await db_session.get(OutboxMessage, found)
                assert one is not None
                if one.status != OutboxStatus.PARKED:
                    fail(f"outbox message {one.id} is {one.status}, not parked: nothing to retry")
                if one.channel == "ocpi" and one.destination.isdigit():
                    partner_ids = [int(one.destination)]
            elif partner is not None:
                partner_ids = [await _partner_ref(db_session, partner)]
            else:
                partner_ids = [
                    int(d)
                    for d in (
                        await db_session.scalars(
                            select(OutboxMessage.destination)
                            .where(
                                OutboxMessage.channel == "ocpi", OutboxMessage.status == OutboxStatus.PARKED
                            )
                            .distinct()
                        )
                    ).all()
                    if d.isdigit()
                ]
        total = ResyncReport()
        for partner_id in partner_ids:
            report = await resync(db, partner_id, message_id=one.id if one is not None else None)
            total.replaced += report.replaced
            total.released += report.released
            total.superseded += report.superseded
        if one is not None and partner_ids and not (total.replaced or total.released):
            fail(f"outbox message {one.id} was not queued again: its partner is not registered")
        others = 0
        if one is not None and not partner_ids:
            others = await retry_parked(db, one.id)
        elif one is None and partner is None:
            async with db.session() as db_session:
                channels = (
                    await db_session.scalars(
                        select(OutboxMessage.channel)
                        .where(OutboxMessage.channel != "ocpi", OutboxMessage.status == OutboxStatus.PARKED)
                        .distinct()
                    )
                ).all()
            for ch in channels:  # every other channel's parked messages (emails), as they are
                others += await retry_parked(db, channel=ch)
        console.print(f"{total.released + others} message(s) queued again")
        if total.replaced:
            console.print(
                f"{total.replaced} object(s) re-synced: sent again as their current state "
                f"({total.superseded} stale message(s) superseded)"
            )

    run_with_db(go)
