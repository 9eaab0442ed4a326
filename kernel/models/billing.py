"""Billing tables (issue 14): issuers, their number series' counters, issued documents and their CDRs.

* ``billing_issuers``: a hosted party that sells charging and issues documents (:class:`billing.core.Issuer`
  as columns: legal identity, currency, terms, series, VAT situation). Editable (an address changes); a
  document keeps its own snapshot of the seller, so an edit never changes what was issued.
  ``registration_id_set_at``: when its registration id was set or changed (not when the row was added, and
  no other edit), the instant the billing catch-up's widening for what was held counts from.
* ``billing_number_series``: the counter row of one issuer, series and period (year, 0 for a running
  series): ``next_number`` is the sequence the next document takes, ``last_issue_date`` the last one's date. The allocator locks this row in the
  transaction that inserts the document, so a rollback gives the number back and the series stays gap-free.
* ``billing_documents``: an invoice or a credit note as issued: its number (UNIQUE per issuer and series),
  kind, dates, buyer snapshot, currency, totals and the whole document as JSON. Immutable once inserted.
* ``billing_document_cdrs``: which CDR is on which document; keyed by (cdr, kind), so a CDR is invoiced
  once and credited once. Immutable too.
* ``billing_accounts``: a customer the hub bills (a fleet, a driver without a contract, a party for B2B
  documents): the buyer identity documents are issued to, language, time zone, currency, and the payment
  provider's customer and default payment method. Editable; documents keep their own buyer snapshot.
* ``billing_charges``: fees waiting for an invoice (a dunning fee, later a recurring plan fee); the monthly
  invoice picks up the account's uninvoiced charges as fee lines and marks them with its id.
* ``billing_payments``: every payment and refund against a document (card, SEPA debit, bank transfer), with
  the provider's reference and the idempotency key sent to it; a pending attempt is recorded before the
  provider is called, so a crash never charges twice. Status moves pending -> succeeded / failed / canceled.
* ``billing_webhook_events``: provider events received (UNIQUE per provider and event id): a re-delivered
  webhook is recognised and applied once.
* ``billing_dunning_steps``: each dunning step done, with its rule and key (UNIQUE): the job never repeats one.
* ``billing_holds``: a block or a lowered spending limit put on an account's tokens for an unpaid document;
  the gateway's authorizer reads the active ones (``released_at`` NULL) on every Authorize, in every process.
* ``billing_held_outside_vat``: the CDRs and fees held for an issuer without a registration id that were
  warned about (once each, in every process), until the id is set.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import Amount, BigID, JSONDoc, JSONText, UTCDateTime
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
    # when the registration id was last set or changed on the stored issuer (billing.store.issuers.
    # set_registration_id, the hub's clock; NULL: it came with the issuer, or it has none): the hourly catch-up
    # then looks at every uninvoiced CDR the issuer sells for a while (what was held for it), not at any edit
    registration_id_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    email: Mapped[str | None] = mapped_column(String(255), default=None)
    currency: Mapped[str] = mapped_column(String(3))
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=14)
    invoice_prefix: Mapped[str] = mapped_column(String(20))
    credit_prefix: Mapped[str] = mapped_column(String(20))
    yearly: Mapped[bool] = mapped_column(Boolean, default=True)
    reverse_charge_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    exemption: Mapped[str | None] = mapped_column(Text, default=None)
    logo: Mapped[str | None] = mapped_column(Text, default=None)
    dunning: Mapped[dict | None] = mapped_column(JSONDoc, default=None)  # the schedule; None: the default one


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
        UniqueConstraint("issuer_id", "kind", "source_key"),
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
    document: Mapped[dict] = mapped_column(JSONText)  # as issued, never queried inside
    credits_document_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_documents.id"), default=None, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="issued")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_accounts.id"), default=None, index=True
    )
    billing_period: Mapped[str | None] = mapped_column(String(7), default=None)  # "2026-11" on a monthly one
    source_key: Mapped[str | None] = mapped_column(String(160), default=None)  # what it was issued for, once


class BillingDocumentCdr(Base):
    """A CDR on a document; ``kind`` is the document's, so a CDR is invoiced once and credited once (the
    primary key).

    Neither id has a foreign key. Both rows it joins are never deleted (a CDR is corrected by a new CDR, a
    document by a credit note) and every link is written in the transaction that read the CDR and inserted
    the document. The checks cost more than the rest of the monthly job's writing at 10 million CDRs: the
    one on ``cdr_id`` locked every wide CDR row it pointed at (FOR KEY SHARE, a write to each CDR's page), the
    one on ``document_id`` ran a lookup per link (docs/benchmarks.md). ``meter_values`` has none for the same
    reason."""

    __tablename__ = "billing_document_cdrs"

    cdr_id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    document_id: Mapped[int] = mapped_column(BigID, index=True)


class BillingAccount(Timestamped, Base):
    """A customer the hub bills: ``kind`` ``fleet`` (``fleet_id``), ``driver`` (``token_id``: a driver without
    a contract) or ``party`` (``party_id``: a CPO or eMSP, for B2B documents), of one issuer and currency."""

    __tablename__ = "billing_accounts"
    __table_args__ = (
        UniqueConstraint("issuer_id", "fleet_id", "currency"),
        UniqueConstraint("issuer_id", "token_id", "currency"),
        UniqueConstraint("issuer_id", "party_id", "currency"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("billing_issuers.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    fleet_id: Mapped[int | None] = mapped_column(ForeignKey("fleets.id", ondelete="RESTRICT"), default=None)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id", ondelete="RESTRICT"), default=None)
    party_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), default=None)
    currency: Mapped[str] = mapped_column(String(3))
    buyer: Mapped[dict] = mapped_column(JSONDoc)  # a billing.core Identity as JSON (billing.store.codec)
    language: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    provider: Mapped[str | None] = mapped_column(String(16), default=None)  # "stripe"
    provider_customer_id: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    payment_method_id: Mapped[str | None] = mapped_column(String(64), default=None)
    payment_method_label: Mapped[str | None] = mapped_column(String(64), default=None)  # "card •••• 4242"
    auto_collect: Mapped[bool] = mapped_column(Boolean, default=True)


class BillingCharge(Timestamped, Base):
    """A fee waiting for the account's next invoice (``document_id`` NULL) or invoiced on ``document_id``."""

    __tablename__ = "billing_charges"
    __table_args__ = (UniqueConstraint("account_id", "source_key"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="RESTRICT"), index=True
    )
    description: Mapped[str] = mapped_column(String(255))
    amount: Mapped[Decimal] = mapped_column(Amount())  # net, excl. VAT
    currency: Mapped[str] = mapped_column(String(3))
    vat_rate: Mapped[Decimal | None] = mapped_column(Amount(), default=None)  # percent; None: outside VAT
    charged_on: Mapped[date] = mapped_column(Date)
    source_key: Mapped[str] = mapped_column(String(160))  # e.g. the dunning step's key: charged once
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_documents.id"), default=None, index=True
    )


class BillingPayment(Timestamped, Base):
    """A payment (``kind`` ``payment``) or refund (``refund``) of ``amount`` against a document."""

    __tablename__ = "billing_payments"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_documents.id"), default=None, index=True
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_accounts.id"), default=None, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="payment")
    method: Mapped[str] = mapped_column(String(16))  # card, sepa_debit, bank_transfer
    provider: Mapped[str] = mapped_column(String(16))  # stripe, manual
    provider_ref: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)  # pi_..., re_...
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    amount: Mapped[Decimal] = mapped_column(Amount())
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, succeeded, failed, canceled
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    reference: Mapped[str | None] = mapped_column(String(140), default=None)  # a bank transfer's reference
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class BillingWebhookEvent(Base):
    """A payment provider's event, recorded when received: a re-delivery is recognised by its id."""

    __tablename__ = "billing_webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)


class BillingDunningStep(Base):
    """A dunning step done for a document: its rule, action and key (``invoice:rule:occurrence``), once."""

    __tablename__ = "billing_dunning_steps"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("billing_documents.id"), index=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    rule: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    due_on: Mapped[date] = mapped_column(Date)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    detail: Mapped[dict] = mapped_column(JSONDoc, default=dict)


class BillingHold(Base):
    """A block (``action`` ``block``) or lowered monthly limit (``lower_limit``, ``limit`` in ``currency``) on
    the tokens of an account's fleet (``fleet_id``) or on one token (``token_id``), for ``document_id``; active
    while ``released_at`` is NULL."""

    __tablename__ = "billing_holds"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("billing_accounts.id"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("billing_documents.id"), index=True)
    fleet_id: Mapped[int | None] = mapped_column(ForeignKey("fleets.id"), default=None, index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"), default=None, index=True)
    action: Mapped[str] = mapped_column(String(16))
    limit: Mapped[Decimal | None] = mapped_column(Amount(), default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    rule: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)


class BillingHeldOutsideVat(Base):
    """An item (``cdr:<cdr_uid>``, ``fee:<charge id>``) held for issuer ``issuer_id`` because it has no
    registration id to issue it outside the scope of VAT with, recorded when it was first held
    (``billing.store.held``): the warning is logged when an issuer's held set grows, not at every run. Its
    rows go when the issuer's registration id is set."""

    __tablename__ = "billing_held_outside_vat"

    issuer_id: Mapped[int] = mapped_column(
        ForeignKey("billing_issuers.id", ondelete="CASCADE"), primary_key=True
    )
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


for _model in (BillingDocument, BillingDocumentCdr):
    event.listen(_model, "before_update", refuse_changes("update"))
    event.listen(_model, "before_delete", refuse_changes("delete"))
