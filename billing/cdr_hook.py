"""Billing's CDR hook: the documents a new CDR gets at once, in the CDR's own transaction.

* A **credit CDR** (a correction) whose original is on an invoice (per-session or monthly) gets the credit note
  of that invoice, one per invoice when its lines outside VAT are on an invoice of their own
  (:func:`billing.store.issuing.issue_cdr_credit_notes`), each with its refund when the invoice was paid. Each
  credits what is left of the CDR there: after an operator's partial credit, the rest; when an operator
  credited it all, nothing more (the credit CDR is linked to that note, a warning logged, never retried). One
  whose original is on no invoice yet gets nothing now: both are lines of the fleet's next monthly invoice.
* A **priced CDR of a driver without a contract** (a token with no fleet when the CDR was made, its recorded
  ``cdrs.fleet_id``: :mod:`kernel.domain.cdr_holder`, so a token that joined a fleet later or left one does not
  change it; the app and card drivers of an eMSP, or an ad-hoc driver at a CPO) gets its per-session invoice from the issuer of the party selling it
  (:func:`seller_issuer`): the issuer whose party is the token's eMSP (``cdr.emsp_id`` / ``token.emsp_id``),
  or the CPO's (``cdr.cpo_id``) for an ``AD_HOC_USER`` token or one of no eMSP. No such issuer (a roaming
  partner's driver: the partner bills them), no token, a fleet token, a CDR without priced lines or in another
  currency than the issuer's: nothing (logged at debug). The buyer is the driver as the token knows them
  when the CDR was made (:func:`consumer_buyer`: the CDR's recorded driver name, the token's e-mail), put on
  the token's driver account at issue time (:func:`current_buyer`; the account is created for the token so
  payments can follow, with the name then, and follows a renamed driver), and the
  invoice's collection is requested. Its lines outside the scope of VAT go on an invoice of their own (EN 16931
  BR-O-11/12: :func:`billing.store.issuing.issue_session_invoice`); both are collected, and the receipt carries
  both. An issuer without a registration id cannot issue that one (BR-O-02, BR-CO-26): the CDR is held
  (:class:`~billing.store.issuing.HeldOutsideVat`, a warning the first time), on no invoice, until the id is
  set.

Both are idempotent: a second run (or ``evhub invoices issue --cdr``, which calls :func:`invoice_cdr`) finds
the document issued and does nothing more. The hook runs in a savepoint (``BillingComponent``): if it fails, the
CDR is kept without its document, and the hourly job's :func:`catch_up` issues it; that is also how a held CDR
is invoiced once its issuer's registration id is set, however old it is (:func:`catch_up`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pycountry
from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.documents import Address, Identity
from billing.payments.collection import request_collection
from billing.payments.refunds import request_refund
from billing.store.accounts import buyer_of, driver_account
from billing.store.codec import to_json
from billing.store.issuing import (
    CREDIT_NOTE,
    INVOICE,
    BillingError,
    HeldOutsideVat,
    document_of,
    issue_cdr_credit_notes,
    issue_session_invoice,
    session_invoices,
)
from kernel.db.engine import Database
from kernel.domain.cdr_holder import fleet_where, holder_of
from kernel.models import BillingAccount, BillingDocument, BillingDocumentCdr, Cdr, Location, Token
from kernel.models.billing import BillingIssuer

log = logging.getLogger(__name__)


class NotBilledNow(BillingError):
    """The CDR gets no document of its own now (why is the message): not an error."""


async def seller_issuer(db_session: AsyncSession, cdr: Cdr, token: Token | None) -> BillingIssuer | None:
    """The issuer of the party selling ``cdr``'s session to its driver: the token's eMSP's (its app and card
    drivers), or the CPO's for an ad-hoc driver (``AD_HOC_USER``, or a token of no eMSP). A token of an eMSP that
    is no issuer is a roaming contract: that eMSP bills its driver, the CPO bills the eMSP (settlement), None.
    A party with issuers in several currencies sells in the CDR's."""
    emsp = cdr.emsp_id if cdr.emsp_id is not None else (token.emsp_id if token else None)
    ad_hoc = token is not None and token.type == "AD_HOC_USER"
    party_id = cdr.cpo_id if ad_hoc or emsp is None else emsp
    return await db_session.scalar(
        select(BillingIssuer)
        .where(BillingIssuer.party_id == party_id)
        .order_by((BillingIssuer.currency == cdr.currency).desc(), BillingIssuer.id)
        .limit(1)
    )


def _alpha2(code: str | None) -> str | None:
    if not code:
        return None
    country = pycountry.countries.get(alpha_3=code.upper()) if len(code) == 3 else None
    if country is None and len(code) == 2:
        country = pycountry.countries.get(alpha_2=code.upper())
    return country.alpha_2 if country is not None else None


def consumer_buyer(
    token: Token, location: Location | None, issuer: BillingIssuer, driver_name: str | None = None
) -> Identity:
    """A driver without a contract as a buyer: ``driver_name`` (the CDR's recorded driver; else the token's,
    else "Card holder <contract id>"), their e-mail, a consumer (not a business). The hub does not know their
    postal address; EN 16931 requires only the buyer's country in it (BR-10, BR-11), so the address is the
    country alone: the charging location's (the place of supply), else the issuer's."""
    name = (driver_name or token.driver_name or "").strip() or f"Card holder {token.contract_id}"
    country = _alpha2(location.country if location else None) or issuer.country
    return Identity(name, Address("", "", "", country), email=token.driver_email or None)


def current_buyer(account: BillingAccount, driver: Identity) -> Identity:
    """The buyer of a per-session invoice issued now on driver ``account``: the account's identity with the
    driver's name and e-mail as they are at issue time (``driver``: the CDR's recorded driver, the token's
    e-mail), not as they were when the account was made; the account keeps them from then on. Documents
    issued earlier keep their own buyer (immutable)."""
    buyer = replace(buyer_of(account), legal_name=driver.legal_name, email=driver.email)
    stored = to_json(buyer)
    if account.buyer != stored:
        account.buyer = stored
    return buyer


async def invoice_cdr(db_session: AsyncSession, cdr: Cdr) -> BillingDocument:
    """The per-session invoice of ``cdr`` for a driver without a contract, issued if missing (see the module);
    NotBilledNow when the CDR gets none, HeldOutsideVat when it waits for its issuer's registration id (the
    driver's account is made all the same: the reconciliation report names the held CDR by it)."""
    existing = await document_of(db_session, cdr.id, INVOICE)
    if existing is not None:
        return existing
    if cdr.is_credit:
        raise NotBilledNow(f"CDR {cdr.cdr_uid} is a credit CDR: it is credited, not invoiced")
    if not (cdr.explanation or {}).get("lines"):
        raise NotBilledNow(f"CDR {cdr.cdr_uid} has no priced lines (not priced by the hub)")
    token = await db_session.get(Token, cdr.token_id) if cdr.token_id is not None else None
    if token is None:
        raise NotBilledNow(f"CDR {cdr.cdr_uid} has no token: no buyer to invoice")
    if holder_of(cdr, token).fleet_id is not None:
        raise NotBilledNow(f"CDR {cdr.cdr_uid} is a fleet's: it goes on the fleet's monthly invoice")
    issuer = await seller_issuer(db_session, cdr, token)
    if issuer is None:
        raise NotBilledNow(
            f"CDR {cdr.cdr_uid}: the party selling it (its driver's eMSP, or the CPO ad hoc) is no issuer"
        )
    if issuer.currency != cdr.currency:
        raise NotBilledNow(
            f"CDR {cdr.cdr_uid} is in {cdr.currency}, issuer {issuer.key} invoices in {issuer.currency}"
        )
    location = await db_session.get(Location, cdr.location_id) if cdr.location_id is not None else None
    driver = consumer_buyer(token, location, issuer, holder_of(cdr, token).driver_name)
    account = await driver_account(
        db_session,
        issuer,
        token.id,
        driver,
        currency=cdr.currency,
        language=token.language or "en",
        timezone=location.time_zone if location else "UTC",
    )
    row = await issue_session_invoice(
        db_session,
        issuer_key=issuer.key,
        cdr_id=cdr.id,
        buyer=current_buyer(account, driver),
        account_id=account.id,
    )
    for part in await session_invoices(db_session, row):  # with its invoice outside VAT, if there is one
        await request_collection(db_session, part)
        log.info("issued invoice %s for CDR %s", part.number, cdr.cdr_uid)
    return row


async def credit_cdr(db_session: AsyncSession, cdr: Cdr) -> BillingDocument:
    """The credit note of credit CDR ``cdr`` when its original is on an invoice (the first, when there are two;
    the note that had credited everything already, when nothing was left); NotBilledNow otherwise."""
    existing = await document_of(db_session, cdr.id, CREDIT_NOTE)
    if existing is not None:
        return existing
    if cdr.credit_of is None or await document_of(db_session, cdr.credit_of, INVOICE) is None:
        raise NotBilledNow(f"credit CDR {cdr.cdr_uid}: its original is on no invoice (next monthly invoice)")
    if await document_of(db_session, cdr.id, INVOICE) is not None:
        raise NotBilledNow(f"credit CDR {cdr.cdr_uid} is a line of a monthly invoice already")
    for row in await issue_cdr_credit_notes(db_session, credit_cdr_id=cdr.id):
        refunded = await request_refund(db_session, row)
        queued = ", its refund queued" if refunded else ""
        log.info("issued credit note %s for credit CDR %s%s", row.number, cdr.cdr_uid, queued)
    note = await document_of(db_session, cdr.id, CREDIT_NOTE)
    assert note is not None  # issued, or linked to the note that had credited it all
    return note


async def billing_cdr_hook(db_session: AsyncSession, cdr: Cdr) -> None:
    """For ``hub.hooks.cdr`` (run by pricing in the CDR's transaction, before the portal's receipt hook)."""
    try:
        if cdr.is_credit:
            await credit_cdr(db_session, cdr)
        else:
            await invoice_cdr(db_session, cdr)
    except (NotBilledNow, HeldOutsideVat) as why:  # (a hold was logged as a warning already)
        log.debug("no billing document now: %s", why)


CATCH_UP_WINDOW = timedelta(days=3)
"""How far back :func:`catch_up` looks for CDRs whose documents the hook could not issue."""


async def catch_up(db: Database, now: datetime, limit: int = 2000) -> int:
    """Issue what the hook should have issued for the CDRs made since ``now`` minus :data:`CATCH_UP_WINDOW` (the
    hook runs in a savepoint: a failure is logged and leaves the CDR without its document), and for every CDR,
    however old, sold by an issuer whose registration id was set or changed in that window
    (``registration_id_set_at``; no other edit of the issuer counts): the CDRs held for it,
    :class:`~billing.store.issuing.HeldOutsideVat`, and their credit CDRs;
    each CDR in its own transaction, a failing one logged and skipped. The number of documents issued. Run by
    the hourly job."""
    since = now - CATCH_UP_WINDOW
    async with db.session() as db_session:
        parties = select(BillingIssuer.party_id).where(BillingIssuer.party_id.is_not(None))
        # the id's own timestamp, not the row's updated_at: any other edit of the issuer widens nothing
        registered = parties.where(
            BillingIssuer.registration_id.is_not(None), BillingIssuer.registration_id_set_at >= since
        )
        emsp = func.coalesce(Cdr.emsp_id, Token.emsp_id)
        ad_hoc = or_(Token.type == "AD_HOC_USER", emsp.is_(None))

        def sold_by(issuers: Any) -> ColumnElement[bool]:  # seller_issuer's
            return or_(and_(ad_hoc, Cdr.cpo_id.in_(issuers)), and_(~ad_hoc, emsp.in_(issuers)))

        sells = sold_by(parties)
        ids = (
            await db_session.scalars(
                select(Cdr.id)
                .outerjoin(Token, Token.id == Cdr.token_id)
                .where(
                    or_(Cdr.created_at >= since, sold_by(registered)),
                    ~_linked(Cdr.id, INVOICE),
                    ~_linked(Cdr.id, CREDIT_NOTE),
                    or_(
                        and_(Cdr.is_credit.is_(True), _linked(Cdr.credit_of, INVOICE)),
                        and_(
                            Cdr.is_credit.is_(False),
                            Token.id.is_not(None),
                            fleet_where(lambda fleet: fleet.is_(None)),
                            sells,
                        ),
                    ),
                )
                .order_by(Cdr.id)
                .limit(limit)
            )
        ).all()
    issued = 0
    for cdr_id in ids:
        try:
            async with db.session() as db_session:
                cdr = await db_session.get(Cdr, cdr_id)
                if cdr is None:
                    continue
                try:
                    await (credit_cdr if cdr.is_credit else invoice_cdr)(db_session, cdr)
                except HeldOutsideVat as why:  # committed: the hold is remembered, warned once (store.held)
                    log.debug("no billing document now: %s", why)
                    continue
                issued += 1
        except NotBilledNow as why:
            log.debug("no billing document now: %s", why)
        except Exception:
            log.exception("could not issue the billing document of CDR %s", cdr_id)
    return issued


def _linked(cdr_id: Any, kind: str) -> ColumnElement[bool]:
    return exists().where(BillingDocumentCdr.cdr_id == cdr_id, BillingDocumentCdr.kind == kind)
