"""``evhub issuers``, ``evhub accounts`` and ``evhub invoices`` — billing's issuers, customers and documents.

An issuer is the hosted party that sells and issues documents (legal identity with its registration id,
currency, series, terms, VAT situation; ``issuers set KEY --registration-id`` gives one stored without it its
id); an account is a customer it bills (``accounts add --fleet``: a fleet's monthly invoices).
``invoices issue --cdr ID`` issues the per-session invoice of a CDR (or, for a credit CDR, the credit note of
its invoice), ``invoices issue --fleet NAME --month 2026-11`` a fleet's monthly invoice, both idempotently;
``invoices credit`` an operator's credit note, ``invoices pdf`` the Factur-X PDF. Bad input is one ``error:``
line and exit 1.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import billing
from billing.core.vat import require_registration_id
from evhub.cli._common import console, fail, print_json, run_with_db, table
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingIssuer, Cdr, Fleet, Party

issuers_app = typer.Typer(help="Billing issuers: who sells and issues invoices.", no_args_is_help=True)
accounts_app = typer.Typer(
    help="Billing accounts: the customers issuers bill (fleets).", no_args_is_help=True
)
invoices_app = typer.Typer(help="Invoices and credit notes.", no_args_is_help=True)


def _issuer_item(row: BillingIssuer) -> dict[str, Any]:
    return {
        "key": row.key,
        "legal_name": row.legal_name,
        "address": f"{row.street}, {row.postal_code} {row.city}, {row.country}",
        "vat_id": row.vat_id,
        "registration_id": row.registration_id,
        "currency": row.currency,
        "payment_terms_days": row.payment_terms_days,
        "series": [row.invoice_prefix, row.credit_prefix],
        "yearly": row.yearly,
        "reverse_charge_allowed": row.reverse_charge_allowed,
        "exemption": row.exemption,
    }


def _document_item(row: BillingDocument, issuer: str) -> dict[str, Any]:
    return {
        "number": row.number,
        "kind": row.kind,
        "issuer": issuer,
        "issue_date": row.issue_date.isoformat(),
        "buyer": row.buyer.get("legal_name"),
        "currency": row.currency,
        "total_excl_vat": row.total_excl_vat,
        "total_vat": row.total_vat,
        "payable": row.payable,
    }


@issuers_app.command("add")
def issuers_add(
    key: Annotated[str, typer.Argument(help="The hub's name for the issuer")],
    name: Annotated[str, typer.Option(help="Legal name")],
    street: Annotated[str, typer.Option(help="Street and number")],
    postal_code: Annotated[str, typer.Option(help="Postal code")],
    city: Annotated[str, typer.Option(help="City")],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 country")],
    vat_id: Annotated[str | None, typer.Option(help="VAT id (with its country prefix)")] = None,
    registration_id: Annotated[
        str | None,
        typer.Option(help="Legal registration id (the trade register's, e.g. KvK 12345678; BT-30): required"),
    ] = None,
    currency: Annotated[str, typer.Option(help="Invoice currency")] = "EUR",
    terms: Annotated[int, typer.Option(help="Payment terms in days")] = 14,
    invoice_prefix: Annotated[str, typer.Option(help="Invoice number series")] = "INV",
    credit_prefix: Annotated[str, typer.Option(help="Credit note number series")] = "CN",
    running: Annotated[bool, typer.Option(help="One running series instead of a yearly one")] = False,
    reverse_charge: Annotated[bool, typer.Option(help="Allow reverse charge on B2B supplies")] = False,
    exemption: Annotated[str | None, typer.Option(help="The VAT exemption it invoices under")] = None,
    party: Annotated[
        str | None,
        typer.Option(help="The hosted party it sells for (CC*PID): its drivers' CDRs are invoiced"),
    ] = None,
    logo: Annotated[
        Path | None, typer.Option(help="Logo on its documents: a PNG, JPEG or SVG file (at most 256 KiB)")
    ] = None,
) -> None:
    """Add an issuer."""
    logo_uri = _logo_uri(logo) if logo is not None else None

    async def go(db: Database) -> None:
        try:
            identity = billing.Identity(
                name,
                billing.Address(street, postal_code, city, country),
                vat_id=vat_id,
                registration_id=registration_id,
                business=True,
            )
            require_registration_id(identity)  # its lines outside VAT need it (BR-O-02, BR-CO-26)
            issuer = billing.Issuer(
                key=key,
                identity=identity,
                currency=currency,
                invoice_series=billing.Series(invoice_prefix, yearly=not running),
                credit_series=billing.Series(credit_prefix, yearly=not running),
                terms=billing.PaymentTerms(terms),
                reverse_charge_allowed=reverse_charge,
                exemption=exemption,
                logo=logo_uri,
            )
            async with db.session() as s:
                party_id = (await _party(s, party)).id if party is not None else None
                await billing.add_issuer(s, issuer, party_id)
        except ValueError as exc:
            fail(str(exc))
        console.print(f"added issuer {key} ({identity.legal_name}, {issuer.currency})", highlight=False)

    run_with_db(go)


LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
LOGO_MAX_BYTES = 256 * 1024


def _logo_uri(path: Path) -> str:
    """The logo file as the ``data:`` URI documents print (printing fetches nothing else); one error line if not."""
    kind = LOGO_TYPES.get(path.suffix.lower())
    if kind is None:
        fail(f"--logo {path}: a .png, .jpg or .svg file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"--logo {path}: {exc.strerror or exc}")
    if len(data) > LOGO_MAX_BYTES:
        fail(f"--logo {path}: {len(data)} bytes, at most {LOGO_MAX_BYTES}")
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


@issuers_app.command("set")
def issuers_set(
    key: Annotated[str, typer.Argument(help="Issuer key")],
    registration_id: Annotated[
        str,
        typer.Option(help="Legal registration id (the trade register's, e.g. KvK 12345678; BT-30)"),
    ],
) -> None:
    """Set an issuer's legal registration id (one stored before it was required): what was held outside the
    scope of VAT for want of it is invoiced, on invoices of its own, by the next run."""

    async def go(db: Database) -> None:
        try:
            async with db.session() as s:
                row = await billing.set_issuer_registration_id(s, key, registration_id)
                value = row.registration_id
        except ValueError as exc:
            fail(str(exc))
        console.print(f"issuer {key}: registration id {value}", highlight=False)

    run_with_db(go)


@issuers_app.command("list")
def issuers_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List the issuers."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            items = [_issuer_item(row) for row in await billing.list_issuers(s)]
        if as_json:
            print_json(items)
            return
        columns = ["key", "legal_name", "vat_id", "currency", "series"]
        table("Issuers", columns, [[str(item[c]) for c in columns] for item in items])

    run_with_db(go)


@issuers_app.command("show")
def issuers_show(key: Annotated[str, typer.Argument(help="Issuer key")]) -> None:
    """Show one issuer (JSON)."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            try:
                row = await billing.get_issuer(s, key)
            except billing.IssuerError as exc:
                fail(str(exc))
            print_json(_issuer_item(row))

    run_with_db(go)


async def _party(s: AsyncSession, key: str) -> Party:
    cc, _, pid = key.partition("*")
    row = await s.scalar(
        select(Party)
        .where(Party.country_code == cc.upper(), Party.party_id == pid.upper())
        .order_by(Party.id)
        .limit(1)
    )
    if row is None:
        raise billing.BillingError(f"no party {key} (give it as CC*PID)")
    return row


async def _issuer_keys(s: AsyncSession) -> dict[int, str]:
    return {row.id: row.key for row in await billing.list_issuers(s)}


@invoices_app.command("list")
def invoices_list(
    issuer: Annotated[str | None, typer.Option(help="Only this issuer's documents")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the invoices and credit notes, oldest first."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            keys = await _issuer_keys(s)
            query = select(BillingDocument).order_by(BillingDocument.id)
            if issuer is not None:
                try:
                    query = query.where(BillingDocument.issuer_id == (await billing.get_issuer(s, issuer)).id)
                except billing.IssuerError as exc:
                    fail(str(exc))
            items = [_document_item(row, keys[row.issuer_id]) for row in (await s.execute(query)).scalars()]
        if as_json:
            print_json(items)
            return
        columns = ["number", "kind", "issuer", "issue_date", "buyer", "currency", "payable"]
        table("Invoices and credit notes", columns, [[str(item[c]) for c in columns] for item in items])

    run_with_db(go)


@invoices_app.command("show")
def invoices_show(
    number: Annotated[str, typer.Argument(help="Document number, e.g. INV-2026-000001")],
    issuer: Annotated[str | None, typer.Option(help="The issuer, when two use the number")] = None,
) -> None:
    """Show one document as issued (JSON)."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            query = select(BillingDocument).where(BillingDocument.number == number)
            if issuer is not None:
                query = query.join(BillingIssuer).where(BillingIssuer.key == issuer)
            rows = list((await s.execute(query)).scalars())
        if len(rows) != 1:
            fail(
                f"no document {number}" if not rows else f"{number} is used by several issuers: give --issuer"
            )
        print_json(rows[0].document)

    run_with_db(go)


@invoices_app.command("issue")
def invoices_issue(
    cdr: Annotated[
        str | None, typer.Option(help="The CDR's id (OCPI id); a credit CDR gets its credit note")
    ] = None,
    fleet: Annotated[
        str | None, typer.Option(help="A fleet's name: its monthly invoice (with --month)")
    ] = None,
    month: Annotated[str | None, typer.Option(help="The month of a monthly invoice, YYYY-MM")] = None,
    issuer: Annotated[str | None, typer.Option(help="Issuer key (an invoice)")] = None,
    buyer_name: Annotated[str | None, typer.Option(help="Buyer's legal name (an invoice)")] = None,
    buyer_street: Annotated[str, typer.Option(help="Buyer's street")] = "",
    buyer_postal_code: Annotated[str, typer.Option(help="Buyer's postal code")] = "",
    buyer_city: Annotated[str, typer.Option(help="Buyer's city")] = "",
    buyer_country: Annotated[str | None, typer.Option(help="Buyer's ISO 3166-1 country")] = None,
    buyer_vat_id: Annotated[str | None, typer.Option(help="Buyer's VAT id (a business)")] = None,
    business: Annotated[bool, typer.Option(help="The buyer is a business")] = False,
) -> None:
    """Issue the per-session invoice of a CDR (as the CDR hook would for a driver without a contract, or to the
    buyer given), the credit note of a credit CDR, or a fleet's monthly invoice (idempotent)."""
    if (cdr is None) == (fleet is None):
        fail("give either --cdr ID or --fleet NAME --month YYYY-MM")
    if fleet is not None:
        if month is None:
            fail("a monthly invoice needs --month YYYY-MM")
        _issue_monthly(fleet, month, issuer)
        return
    assert cdr is not None

    async def go(db: Database) -> None:
        try:
            async with db.session() as s:
                row = await s.scalar(select(Cdr).where(func.upper(Cdr.cdr_uid) == cdr.upper()))
                if row is None:
                    raise billing.BillingError(f"no CDR {cdr}")
                if row.is_credit:
                    doc = await billing.issue_cdr_credit_note(s, credit_cdr_id=row.id)
                elif issuer is None and buyer_name is None and buyer_country is None:
                    try:
                        doc = await billing.invoice_cdr(s, row)  # as the CDR hook issues it
                    except billing.NotBilledNow as why:
                        raise billing.BillingError(
                            f"{why}; an invoice to a given buyer needs --issuer, --buyer-name and --buyer-country"
                        ) from None
                else:
                    if issuer is None or buyer_name is None or buyer_country is None:
                        raise billing.BillingError(
                            "an invoice to a given buyer needs --issuer, --buyer-name and --buyer-country"
                        )
                    buyer = billing.Identity(
                        buyer_name,
                        billing.Address(buyer_street, buyer_postal_code, buyer_city, buyer_country),
                        vat_id=buyer_vat_id,
                        business=business or buyer_vat_id is not None,
                    )
                    doc = await billing.issue_session_invoice(
                        s, issuer_key=issuer, cdr_id=row.id, buyer=buyer
                    )
        except ValueError as exc:
            fail(str(exc))
        kind = "credit note" if doc.kind == billing.CREDIT_NOTE else "invoice"
        console.print(f"{kind} {doc.number}: {doc.payable} {doc.currency} (CDR {cdr})", highlight=False)

    run_with_db(go)


async def _fleet(s: AsyncSession, name: str) -> Fleet:
    return await billing.fleet_named(s, name)


def _issue_monthly(fleet: str, month: str, issuer: str | None) -> None:
    async def go(db: Database) -> None:
        lines = []
        try:
            async with db.session() as s:
                fleet_row = await _fleet(s, fleet)
                query = select(BillingAccount).where(BillingAccount.fleet_id == fleet_row.id)
                if issuer is not None:
                    query = query.where(BillingAccount.issuer_id == (await billing.get_issuer(s, issuer)).id)
                accounts = list((await s.scalars(query.order_by(BillingAccount.id))).all())
                if not accounts:
                    raise billing.BillingError(
                        f"fleet {fleet!r} has no billing account{' with ' + issuer if issuer else ''}: "
                        "add one with evhub accounts add"
                    )
            for account in accounts:  # each account's invoice in its own transaction
                async with db.session() as s:
                    doc = await billing.issue_monthly_invoice(s, account.id, month)
                if doc is None:
                    lines.append(f"nothing to invoice for {fleet} in {month} ({account.currency})")
                else:
                    lines.append(f"invoice {doc.number}: {doc.payable} {doc.currency} ({fleet}, {month})")
        except ValueError as exc:
            fail(str(exc))
        for line in lines:
            console.print(line, highlight=False)

    run_with_db(go)


@invoices_app.command("credit")
def invoices_credit(
    number: Annotated[str, typer.Argument(help="The invoice's number, e.g. INV-2026-000001")],
    reason: Annotated[str, typer.Option(help="Why it is credited (written on the credit note)")],
    amount: Annotated[str | None, typer.Option(help="A partial credit: the net amount, e.g. 12.30")] = None,
    full: Annotated[bool, typer.Option("--full", help="Credit all that is left on the invoice")] = False,
    issuer: Annotated[str | None, typer.Option(help="The issuer, when two use the number")] = None,
) -> None:
    """Issue an operator's credit note against an invoice: in full or of a net amount, with a reason."""
    if (amount is None) == (not full):
        fail("give either --amount 12.30 or --full")

    async def go(db: Database) -> None:
        try:
            async with db.session() as s:
                note = await billing.credit_invoice(
                    s, number, issuer, billing.parse_amount(amount), reason=reason
                )
        except ValueError as exc:
            fail(str(exc))
        console.print(
            f"credit note {note.number}: {note.payable} {note.currency} (credits {number})", highlight=False
        )

    run_with_db(go)


@invoices_app.command("pdf")
def invoices_pdf(
    number: Annotated[str, typer.Argument(help="Document number, e.g. INV-2026-000001")],
    out: Annotated[Path, typer.Option(help="The PDF file to write")],
    issuer: Annotated[str | None, typer.Option(help="The issuer, when two use the number")] = None,
) -> None:
    """Write a document as issued to a Factur-X PDF (EN 16931 XML embedded), with its issuer's logo."""

    async def go(db: Database) -> None:
        try:
            async with db.session() as s:
                pdf = await billing.document_pdf(s, await billing.find_document(s, number, issuer))
        except ValueError as exc:
            fail(str(exc))
        try:
            out.write_bytes(pdf)
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
        console.print(f"wrote {number} to {out} ({len(pdf)} bytes)", highlight=False)

    run_with_db(go)


@accounts_app.command("add")
def accounts_add(
    fleet: Annotated[str, typer.Option(help="The fleet's name")],
    issuer: Annotated[str, typer.Option(help="The issuer that bills it")],
    name: Annotated[str, typer.Option(help="The buyer's legal name")],
    street: Annotated[str, typer.Option(help="Street and number")],
    postal_code: Annotated[str, typer.Option(help="Postal code")],
    city: Annotated[str, typer.Option(help="City")],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 country")],
    vat_id: Annotated[str | None, typer.Option(help="The buyer's VAT id")] = None,
    email: Annotated[str | None, typer.Option(help="Where invoices are sent")] = None,
    language: Annotated[str, typer.Option(help="Language of its documents")] = "en",
    timezone: Annotated[str, typer.Option(help="IANA time zone of its months")] = "UTC",
    currency: Annotated[str | None, typer.Option(help="Invoice currency (default: the fleet's)")] = None,
) -> None:
    """Add a fleet's billing account with an issuer: the buyer of its monthly invoices."""

    async def go(db: Database) -> None:
        try:
            buyer = billing.Identity(
                name, billing.Address(street, postal_code, city, country), vat_id=vat_id, email=email,
                business=True,
            )  # fmt: skip
            async with db.session() as s:
                account = await billing.add_fleet_account(
                    s, fleet, issuer, buyer, currency=currency, language=language, timezone=timezone
                )
                account_id, code = account.id, account.currency
        except ValueError as exc:
            fail(str(exc))
        console.print(f"added account {account_id}: {fleet} billed by {issuer} in {code}", highlight=False)

    run_with_db(go)


@accounts_app.command("list")
def accounts_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List the billing accounts."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            items = await billing.account_items(s)
        if as_json:
            print_json(items)
            return
        columns = ["id", "kind", "owner", "issuer", "buyer", "currency", "timezone"]
        table("Billing accounts", columns, [[str(item[c]) for c in columns] for item in items])

    run_with_db(go)


@invoices_app.command("issue-settlement")
def invoices_issue_settlement(
    period: Annotated[str, typer.Option(help="The closed settlement period, YYYY-MM")],
) -> None:
    """Issue the B2B documents of a closed settlement period (CPO to eMSP, hub fee, site host self-billing);
    prints what was issued and what was not, with the reason (idempotent)."""
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        fail(f"--period {period!r}: not a month YYYY-MM")

    async def go(db: Database) -> None:
        async with db.session() as s:
            runs = await billing.closed_settlement_runs(s, period)
        if not runs:
            fail(f"--period {period}: no closed settlement run (settle it with `evhub settle --close`)")
        for run in runs:
            try:
                outcomes = await billing.issue_settlement_documents(db, run.id)
            except billing.SettlementDocumentsError as exc:
                fail(str(exc))
            if not outcomes:
                console.print(f"settlement {run.period} r{run.sequence}: no documents", highlight=False)
            for outcome in outcomes:
                console.print(outcome.describe(), highlight=False, soft_wrap=True)

    run_with_db(go)
