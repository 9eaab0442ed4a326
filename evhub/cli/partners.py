"""``evhub partners ...`` (OCPI roaming partners) and ``evhub outbox ...`` (what the hub still has to deliver)."""

from __future__ import annotations

from typing import Annotated

import typer

from evhub.cli._common import console, fail, run_with_db, settings, table
from evhub.db.engine import Database

partners_app = typer.Typer(help="OCPI 2.2.1 roaming partners (eMSPs).", no_args_is_help=True)
outbox_app = typer.Typer(
    help="The durable outbox: OCPI pushes and emails waiting or delivered.", no_args_is_help=True
)


@partners_app.command("invite")
def partners_invite(
    name: Annotated[str, typer.Argument(help="Partner's name")],
    cpo: Annotated[
        list[str] | None, typer.Option(help="Limit the partner to these CPOs (COUNTRY*PARTY); repeat")
    ] = None,
) -> None:
    """Issue a token A for a partner that will register with the hub (shown once)."""
    from evhub.models import PartyRole
    from evhub.provisioning import find_party
    from ocpi.partners import invite_partner

    cfg = settings()

    async def go(db: Database) -> None:
        allowed = None
        if cpo:
            async with db.session() as s:
                allowed = [(await find_party(s, key, PartyRole.CPO)).id for key in cpo]
        invitation = await invite_partner(db, cfg.public_url, name, allowed_cpo_ids=allowed)
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
    from ocpi.credentials import HandshakeError
    from ocpi.partners import register_partner

    cfg = settings()

    async def go(db: Database) -> None:
        try:
            partner = await register_partner(db, cfg.public_url, url, token_a)
        except HandshakeError as exc:
            fail(f"registration failed: {exc}")
        console.print(f"registered with partner {partner.id} ({partner.name}), OCPI {partner.version}")

    run_with_db(go)


@partners_app.command("list")
def partners_list() -> None:
    """List partners with their registration and delivery state."""
    from ocpi.partners import list_partners

    async def go(db: Database) -> None:
        rows = await list_partners(db)
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


@outbox_app.command("list")
def outbox_list(
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead")] = None,
    channel: Annotated[str | None, typer.Option(help="ocpi or email")] = None,
    limit: Annotated[int, typer.Option(help="Newest N")] = 50,
) -> None:
    """List outbox messages, newest first."""
    from evhub.outbox import list_messages, outbox_stats

    if status and status not in ("pending", "delivered", "dead"):
        fail(f"--status {status!r}: expected pending, delivered or dead")

    async def go(db: Database) -> None:
        rows = await list_messages(db, status=status, channel=channel, limit=limit)
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
    message_id: Annotated[int | None, typer.Argument(help="One message id (default: all dead)")] = None,
) -> None:
    """Put dead-lettered messages back in the queue."""
    from evhub.outbox import retry_dead

    async def go(db: Database) -> None:
        count = await retry_dead(db, message_id)
        console.print(f"{count} message(s) queued again")

    run_with_db(go)
