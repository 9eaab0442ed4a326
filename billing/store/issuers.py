"""Issuers in the database: a :class:`billing.core.Issuer` stored as a ``billing_issuers`` row and read back.

The core value validates (country, VAT id, currency, two distinct series, a VAT id or an exemption), so a row
written here is one the core accepts; :func:`add_issuer` refuses a key already used, and an issuer without its
legal registration id (:func:`billing.core.vat.require_registration_id`: an invoice outside the scope of VAT names
the seller by it), with :class:`IssuerError`. An issuer stored before that was required may have none: what it
cannot invoice outside the scope of VAT is held until :func:`set_registration_id` gives it one.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.documents import Address, DocumentError, Identity, PaymentTerms
from billing.core.issuers import Issuer
from billing.core.numbering import Series
from billing.core.vat import require_registration_id
from billing.store.held import forget_held
from kernel.models.billing import BillingIssuer
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)
REGISTRATION_ID_MAX = 64  # billing_issuers.registration_id


class IssuerError(ValueError):
    """An issuer that cannot be stored or found."""


def to_row(issuer: Issuer, party_id: int | None = None) -> BillingIssuer:
    ident = issuer.identity
    return BillingIssuer(
        key=issuer.key,
        party_id=party_id,
        legal_name=ident.legal_name,
        street=ident.address.street,
        postal_code=ident.address.postal_code,
        city=ident.address.city,
        country=ident.address.country,
        vat_id=ident.vat_id,
        registration_id=ident.registration_id,
        email=ident.email,
        currency=issuer.currency,
        payment_terms_days=issuer.terms.days,
        invoice_prefix=issuer.invoice_series.prefix,
        credit_prefix=issuer.credit_series.prefix,
        yearly=issuer.invoice_series.yearly,
        reverse_charge_allowed=issuer.reverse_charge_allowed,
        exemption=issuer.exemption,
        logo=issuer.logo,
    )


def from_row(row: BillingIssuer) -> Issuer:
    """The core :class:`Issuer` of a row."""
    identity = Identity(
        row.legal_name,
        Address(row.street, row.postal_code, row.city, row.country),
        vat_id=row.vat_id,
        registration_id=row.registration_id,
        email=row.email,
        business=True,
    )
    return Issuer(
        key=row.key,
        identity=identity,
        currency=row.currency,
        invoice_series=Series(row.invoice_prefix, yearly=row.yearly),
        credit_series=Series(row.credit_prefix, yearly=row.yearly),
        terms=PaymentTerms(row.payment_terms_days),
        reverse_charge_allowed=row.reverse_charge_allowed,
        exemption=row.exemption,
        logo=row.logo,
    )


async def add_issuer(db_session: AsyncSession, issuer: Issuer, party_id: int | None = None) -> BillingIssuer:
    """Store ``issuer``; IssuerError when it has no legal registration id or its key is taken."""
    try:
        require_registration_id(issuer.identity)
    except DocumentError as exc:
        raise IssuerError(str(exc)) from None
    if await find_issuer(db_session, issuer.key) is not None:
        raise IssuerError(f"issuer {issuer.key!r} exists")
    row = to_row(issuer, party_id)
    db_session.add(row)
    await db_session.flush()
    return row


async def find_issuer(db_session: AsyncSession, key: str) -> BillingIssuer | None:
    return (await db_session.execute(select(BillingIssuer).filter_by(key=key))).scalar_one_or_none()


async def get_issuer(db_session: AsyncSession, key: str) -> BillingIssuer:
    """The issuer row of ``key``, or IssuerError."""
    row = await find_issuer(db_session, key)
    if row is None:
        raise IssuerError(f"no issuer {key!r}")
    return row


async def list_issuers(db_session: AsyncSession) -> list[BillingIssuer]:
    return list((await db_session.execute(select(BillingIssuer).order_by(BillingIssuer.key))).scalars())


async def set_registration_id(db_session: AsyncSession, key: str, registration_id: str) -> BillingIssuer:
    """Give issuer ``key`` its legal registration id (BT-30; stripped), e.g. one stored before it was required:
    from then on its lines outside the scope of VAT go on invoices of their own that name it by that id, and
    what was held for it is invoiced by the next run (the monthly invoice, the hourly catch-up, which looks at
    every uninvoiced CDR it sells for three days after ``registration_id_set_at``, set here when the id changes).
    IssuerError for an unknown issuer or an empty or too long id."""
    value = registration_id.strip()
    if not value:
        raise IssuerError(
            "a registration id is the trade register's number (EN 16931 BT-30): it cannot be empty"
        )
    if len(value) > REGISTRATION_ID_MAX:
        raise IssuerError(f"a registration id has at most {REGISTRATION_ID_MAX} characters")
    row = await get_issuer(db_session, key)
    if row.registration_id != value:
        log.info("issuer %s: registration id %r -> %r", key, row.registration_id, value)
        row.registration_id = value
        row.registration_id_set_at = utcnow()  # the catch-up bills what was held from now (cdr_hook)
        await forget_held(db_session, row.id)  # nothing is held any more
        await db_session.flush()
    return row
