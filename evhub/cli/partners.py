"""``evhub partners ...`` (OCPI roaming partners) and ``evhub outbox ...`` (what the hub still has to deliver).

Partner and message ids may be given in full or as a unique prefix (:mod:`evhub.cli._lookup`)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from evhub import lifecycle
from evhub.cli._common import console, fail, print_json, run_with_db, settings, table
from evhub.cli._lookup import resolve_prefix
from kernel.db.engine import Database

partners_app = typer.Typer(help="OCPI 2.2.1 roaming partners (eMSPs).", no_args_is_help=True)
outbox_app = typer.Typer(
    help="The durable outbox: OCPI pushes and emails waiting or delivered.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
PartnerId = Annotated[str, typer.Argument(help="Partner id (or a unique prefix)")]


async def _partner_id(db_session: AsyncSession, given: str) -> int:
    from kernel.models.roaming import OcpiPartner

    return int(await resolve_prefix(db_session, OcpiPartner.id, given, "partner"))


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
            help="The roles the partner may register (COUNTRY*PARTY[:ROLE], eMSP by default); repeat"
        ),
    ] = None,
) -> None:
    """Issue a token A for a partner that will register with the hub (shown once)."""
    from ocpi.credentials import HandshakeError
    from ocpi.partners import invite_partner, role_key

    cfg = settings()
    if not name.strip():
        fail("partner name must not be empty")
    try:
        roles = [role_key(r) for r in role or []] or None
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


@outbox_app.command("list")
def outbox_list(
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead")] = None,
    channel: Annotated[str | None, typer.Option(help="ocpi or email")] = None,
    limit: Annotated[int, typer.Option(help="Newest N")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List outbox messages, newest first."""
    from dataclasses import asdict

    from kernel.outbox import list_messages, outbox_stats

    if status and status not in ("pending", "delivered", "dead"):
        fail(f"--status {status!r}: expected pending, delivered or dead")
    if limit < 1:
        fail(f"--limit {limit}: expected at least 1")

    async def go(db: Database) -> None:
        rows = await list_messages(db, status=status, channel=channel, limit=limit)
        if as_json:
            print_json([asdict(r) for r in rows])
            return
        table(
            "Outbox",
            ["id", "channel", "destination", "what", "status", "attempts", "created", "last error"],
            [
                [
                    r.id,
                    r.channel,
                    r.destination,
                    r.summary,
                    r.status,
                    r.attempts,
                    r.created_at.isoformat(timespec="seconds"),
                    (r.last_error or "")[:60],
                ]
                for r in rows
            ],
        )
        stats = await outbox_stats(db, channel=channel)
        console.print(f"totals: {stats}")

    run_with_db(go)


@outbox_app.command("retry")
def outbox_retry(
    message_id: Annotated[
        str | None, typer.Argument(help="One message id or unique prefix (default: all dead)")
    ] = None,
) -> None:
    """Put dead-lettered messages back in the queue."""
    from kernel.models import OutboxMessage, OutboxStatus
    from kernel.outbox import retry_dead

    async def go(db: Database) -> None:
        one: int | None = None
        if message_id is not None:
            async with db.session() as db_session:
                one = int(await resolve_prefix(db_session, OutboxMessage.id, message_id, "outbox message"))
                state = await db_session.scalar(select(OutboxMessage.status).where(OutboxMessage.id == one))
            if state != OutboxStatus.DEAD:
                fail(f"outbox message {one} is {state}, not dead: nothing to retry")
        count = await retry_dead(db, one)
        console.print(f"{count} message(s) queued again")

    run_with_db(go)
