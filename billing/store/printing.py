"""A stored document printed: its Factur-X PDF (EN 16931 XML embedded), rendered on demand from the row.

The document is the one issued (the ``document`` column, never rebuilt); the logo is its issuer's (a ``data:``
URI in ``billing_issuers.logo``, so printing fetches nothing) and the language its account's, English without one.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.einvoice.pdf import render_pdf
from billing.store.codec import load_credit_note, load_invoice
from billing.store.issuing import CREDIT_NOTE
from kernel.models import BillingAccount, BillingDocument, BillingIssuer


async def document_pdf(db_session: AsyncSession, row: BillingDocument) -> bytes:
    """The PDF of document ``row`` as issued."""
    issuer = await db_session.get(BillingIssuer, row.issuer_id)
    account = await db_session.get(BillingAccount, row.account_id) if row.account_id is not None else None
    # a self-billed invoice (B2B settlement documents, kind ``self_billed``) is an invoice too
    doc = load_credit_note(row.document) if row.kind == CREDIT_NOTE else load_invoice(row.document)
    locale = (account.language if account else None) or "en"
    return render_pdf(doc, locale=locale, logo=issuer.logo if issuer else None)
