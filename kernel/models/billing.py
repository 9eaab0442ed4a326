"""Billing tables (issue 14): issuers, their number series' counters, issued documents and their CDRs.

* ``billing_issuers``: a hosted party that sells charging and issues documents (:class:`billing.core.Issuer`
  as columns: legal identity, currency, terms, series, VAT situation). Editable (an address changes); a
  document keeps its own snapshot of the seller, so an edit never changes what was issued.
* ``billing_number_series``: the counter row of one issuer, series and period (year, 0 for a running
  series): ``next_number`` is the sequence the next document takes, ``last_issue_date`` the last one's date. The allocator locks this row in the
  transaction that inserts the document, so a rollback gives the number back and the series stays gap-free.
* ``billing_documents``: an invoice or a credit note as issued: its number (UNIQUE per issuer and series),
  kind, dates, buyer snapshot, currency, totals and the whole document as JSON. Immutable once inserted.
* ``billing_document_cdrs``: which CDR is on which document; UNIQUE(cdr, kind), so a CDR is invoiced once
  and credited once. Immutable too.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import Amount, BigID, JSONDoc, UTCDateTime
from kernel.models.immutability import refuse_changes
from kernel.timeutil import utcnow


class BillingIssuer(Timestamped, Base):
    """One issuer; ``key`` is the hub's name for it (the CLI's and the API's)."""

    __tablename__ = "billing_issuers"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    party_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), default=None, index=True)
    legal_name: Mapped[str] = mapped_column(String(255))
    street: Mapped[str] = mapped_column(String(255))
    postal_code: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(128))
    country: Mapped[str] = mapped_column(String(2))
    vat_id: Mapped[str | None] = mapped_column(String(20), default=None)
    registration_id: Mapped[str | None] = mapped_column(String(64), default=None)
    email: Mapped[str | None] = mapped_column(String(255), default=None)
    currency: Mapped[str] = mapped_column(String(3))
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=14)
    invoice_prefix: Mapped[str] = mapped_column(String(20))
    credit_prefix: Mapped[str] = mapped_column(String(20))
    yearly: Mapped[bool] = mapped_column(Boolean, default=True)
    reverse_charge_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    exemption: Mapped[str | None] = mapped_column(Text, default=None)
    logo: Mapped[str | None] = mapped_column(Text, default=None)


class BillingNumberSeries(Base):
    """The counter of one issuer's series in one period (the year; 0 for a running series)."""

    __tablename__ = "billing_number_series"
    __table_args__ = (UniqueConstraint("issuer_id", "series", "period"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("billing_issuers.id", ondelete="RESTRICT"))
    series: Mapped[str] = mapped_column(String(20))
    period: Mapped[int] = mapped_column(Integer, default=0)
    next_number: Mapped[int] = mapped_column(Integer, default=1)
    last_issue_date: Mapped[date | None] = mapped_column(Date, default=None)


class BillingDocument(Base):
    """An issued invoice (``kind`` ``invoice``) or credit note (``credit_note``); never updated or deleted."""

    __tablename__ = "billing_documents"
    __table_args__ = (
        UniqueConstraint("issuer_id", "series", "number"),
        UniqueConstraint("issuer_id", "series", "period", "sequence"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("billing_issuers.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    series: Mapped[str] = mapped_column(String(20))
    period: Mapped[int] = mapped_column(Integer, default=0)
    sequence: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(64))
    issue_date: Mapped[date] = mapped_column(Date, index=True)
    due_date: Mapped[date | None] = mapped_column(Date, default=None)
    supply_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    supply_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    buyer: Mapped[dict] = mapped_column(JSONDoc)
    currency: Mapped[str] = mapped_column(String(3))
    total_excl_vat: Mapped[Decimal] = mapped_column(Amount())
    total_vat: Mapped[Decimal] = mapped_column(Amount())
    total_incl_vat: Mapped[Decimal] = mapped_column(Amount())
    payable: Mapped[Decimal] = mapped_column(Amount())
    document: Mapped[dict] = mapped_column(JSONDoc)
    credits_document_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_documents.id"), default=None, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="issued")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BillingDocumentCdr(Base):
    """A CDR on a document; ``kind`` is the document's, so a CDR is invoiced once and credited once."""

    __tablename__ = "billing_document_cdrs"
    __table_args__ = (UniqueConstraint("cdr_id", "kind"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("billing_documents.id", ondelete="RESTRICT"), index=True
    )
    cdr_id: Mapped[int] = mapped_column(ForeignKey("cdrs.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))


for _model in (BillingDocument, BillingDocumentCdr):
    event.listen(_model, "before_update", refuse_changes("update"))
    event.listen(_model, "before_delete", refuse_changes("delete"))
