"""The typed seams between stages: the hook lists and the service slots a :class:`~kernel.components.Hub` carries.

A stage never imports the stage it hands work to. It writes into a seam declared here (the kernel), and the
stage downstream reads it: the gateway runs ``hub.hooks.session`` when a session changes, OCPI has appended its
push there; OCPI's command runner calls ``hub.services.gateway``, which the gateway put there. Both dataclasses
have slots, so a misspelt seam (``hooks.cdrs``, ``services.gatway``) is an ``AttributeError`` at wiring time,
never a delivery silently lost.

Hooks run inside the producer's transaction (``await hook(db_session, obj)``), in list order; each is expected
to guard itself with a savepoint so that its failure never loses the producer's change. The order is the order
the components are installed (:data:`evhub.wiring.COMPONENTS`) and, within one component, the order its
``install`` appends them; :func:`evhub.wiring.wire` documents the result. docs/design.md has the table of who
writes and who reads each seam.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from kernel.models import EVSE, BillingHold, Cdr, ChargingSession, TariffVersion
    from kernel.outbox import OutboxDispatcher

# ------------------------------------------------------------------------------------------------------ hooks

SessionHook = Callable[["AsyncSession", "ChargingSession"], Awaitable[Any]]
"""A charging session started, got meter values or ended (run by the gateway in its transaction)."""

EvseStatusHook = Callable[["AsyncSession", "EVSE"], Awaitable[Any]]
"""An EVSE's ``status`` changed (run by the gateway after its update, in the same transaction)."""

CdrHook = Callable[["AsyncSession", "Cdr"], Awaitable[Any]]
"""A CDR was created, credit CDRs included (run by pricing in the CDR's transaction)."""

TariffHook = Callable[["AsyncSession", "TariffVersion"], Awaitable[Any]]
"""A tariff version was stored: imported, or published by the grid-load rules (run in its transaction)."""

HoldHook = Callable[["AsyncSession", "BillingHold"], Awaitable[Any]]
"""Billing placed or released a hold on a fleet's or a token's tokens (run by :mod:`billing.store.holds` in the
hold's transaction, after the row was flushed; a release has ``released_at`` set)."""


@dataclass(slots=True)
class Hooks:
    """What runs inside a producer's transaction when it changes something other stages deliver."""

    session: list[SessionHook] = field(default_factory=list)
    evse_status: list[EvseStatusHook] = field(default_factory=list)
    cdr: list[CdrHook] = field(default_factory=list)
    tariff: list[TariffHook] = field(default_factory=list)
    hold: list[HoldHook] = field(default_factory=list)


HOOKS_KEY = "evhub.hooks"
"""Where a database session carries its hub's hooks (``db_session.info``): a producer called from many places
(billing's holds: the dunning job, a payment webhook, a bank transfer, a credit note) reaches them from its
session instead of through every caller."""


def carry_hooks(sessionmaker: Any, hooks: Hooks) -> None:
    """Make every session of ``sessionmaker`` (a :class:`~kernel.db.engine.Database`'s) carry ``hooks``
    (:class:`~kernel.components.Hub` does it for its database)."""
    sessionmaker.configure(info={HOOKS_KEY: hooks})


def hooks_of(db_session: AsyncSession) -> Hooks | None:
    """The hooks ``db_session`` carries (:func:`carry_hooks`); None for a database no hub wired."""
    found = db_session.info.get(HOOKS_KEY)
    return found if isinstance(found, Hooks) else None


# --------------------------------------------------------------------------------------------------- services


@runtime_checkable
class OcppGateway(Protocol):
    """The OCPP gateway as the other stages see it: send a CALL to a charger wherever it is connected."""

    @property
    def port(self) -> int | None:
        """The port the OCPP listener is bound to (None before it started)."""

    async def send(
        self, identity: str, action: str, payload: dict[str, Any], timeout: float | None = None
    ) -> Any:
        """The charger's CALLRESULT payload; raises when it is offline, answers an error or times out."""

    def version_of(self, identity: str) -> str | None:
        """The OCPP version of the charger's connection to this process, None when not connected here."""


class RealTimeDecision(Protocol):
    """A token issuer's answer, in OCPP terms (the gateway's ``AuthResult`` is one)."""

    @property
    def status(self) -> str: ...

    @property
    def token_id(self) -> int | None: ...

    @property
    def reason(self) -> str: ...

    @property
    def expiry(self) -> datetime | None: ...

    @property
    def auth_method(self) -> str: ...

    @property
    def authorization_reference(self) -> str | None: ...

    @property
    def accepted(self) -> bool: ...


@runtime_checkable
class RealTimeAuthorizer(Protocol):
    """Asks a token's issuer (e.g. an eMSP over OCPI ``POST tokens/{uid}/authorize``) in real time.

    Return None when the issuer is unknown or unreachable (the gateway then answers Invalid)."""

    async def authorize(
        self, uid: str, token_type: str, *, charge_point_id: int, location_id: int | None, evse_pk: int | None
    ) -> RealTimeDecision | None: ...


class Pricing(Protocol):
    """Pricing as a service: rate every session waiting to be priced now."""

    async def run_once(self) -> int:
        """The number of CDRs created."""


# ------------------------------------------------------------------------------------------- billing, as seen


@dataclass(frozen=True, slots=True)
class BillingDocumentView:
    """One invoice or credit note as the portal lists it; amounts in ``currency`` (``payable``: what the
    document asked for; ``outstanding``: what is still due, negative when a refund is owed)."""

    number: str
    kind: str  # "invoice" or "credit_note"
    issue_date: date
    due_date: date | None
    currency: str
    payable: Decimal
    outstanding: Decimal
    status: str  # open, partially_paid, paid, overdue, credited, refunded (credit notes: issued, refunded)
    billing_period: str | None = None  # "2026-11" on a monthly invoice
    credits: str | None = None  # a credit note's invoice number
    document_id: int | None = None  # the portal links a PDF by account and id, never by number


@dataclass(frozen=True, slots=True)
class BillingAccountView:
    """A fleet's billing account in one currency: balance, dunning state, payment method, documents."""

    account_id: int
    issuer: str  # the issuer's legal name
    currency: str
    balance: Decimal  # the sum of what is outstanding
    overdue: Decimal
    dunning_state: str  # ok, overdue, limited, blocked
    payment_method: str | None  # "card •••• 4242", None when there is none
    documents: tuple[BillingDocumentView, ...] = ()
    held_for: tuple[str, ...] = ()  # the invoice numbers an active block or lowered limit waits for


@dataclass(frozen=True, slots=True)
class BillingPaymentView:
    """A payment or refund on a fleet's statement (``day``: settled, else recorded; UTC)."""

    day: date
    kind: str  # payment, refund
    method: str  # card, sepa_debit, bank_transfer
    document: str | None  # the document's number
    currency: str
    amount: Decimal
    status: str  # pending, succeeded, failed, canceled
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class BillingAgingView:
    """What one issuer is owed in one currency, per aging bucket (``current``, ``0-30`` ... ``90+``)."""

    issuer: str
    currency: str
    buckets: tuple[tuple[str, Decimal], ...]
    total: Decimal


@dataclass(frozen=True, slots=True)
class BillingStatement:
    """A fleet's statement on ``as_of``: its accounts with their documents, its payments, its aging, and the
    same as CSV."""

    as_of: date
    accounts: tuple[BillingAccountView, ...]
    payments: tuple[BillingPaymentView, ...]
    aging: tuple[BillingAgingView, ...]
    csv: str


@dataclass(frozen=True, slots=True)
class PaymentSetup:
    """What a browser needs to add a payment method through the provider's hosted flow (Stripe.js with a
    SetupIntent; localstripe serves the same script in tests and the demo)."""

    publishable_key: str
    client_secret: str
    setup_intent_id: str
    js_url: str


@dataclass(frozen=True, slots=True)
class InvoiceAttachment:
    """A per-session invoice for the receipt e-mail: its number, the HTML and text renderings of the document,
    and the document's id, whose PDF (with the embedded e-invoice) :meth:`BillingDesk.document_pdf` prints when
    the e-mail is sent (never inside the CDR's transaction). ``others``: the session's other invoice (its lines
    outside the scope of VAT on an invoice of their own), which the receipt carries too."""

    number: str
    filename: str
    document_id: int
    html: str
    text: str
    others: tuple[InvoiceAttachment, ...] = ()  # the session's invoice outside VAT (EN 16931 BR-O-11/12)


@runtime_checkable
class BillingDesk(Protocol):
    """Billing as the portal and the receipts see it (written by billing, read by the portal)."""

    async def fleet_accounts(self, fleet_id: int) -> list[BillingAccountView]:
        """The fleet's billing accounts (one per issuer and currency), newest documents first."""

    async def fleet_document_pdf(
        self, fleet_id: int, account_id: int, document_id: int
    ) -> tuple[str, bytes] | None:
        """(file name, PDF) of document ``document_id`` of the fleet's account ``account_id``; None when it is
        not that account's or the account not the fleet's (numbers repeat across issuers: never by number)."""

    async def start_payment_setup(self, fleet_id: int, account_id: int) -> PaymentSetup:
        """Begin adding a payment method to one of the fleet's accounts."""

    async def finish_payment_setup(self, fleet_id: int, account_id: int, setup_intent_id: str) -> str:
        """Record the payment method the hosted flow confirmed; its label ("card •••• 4242")."""

    async def session_invoice(self, db_session: AsyncSession, cdr_id: int) -> InvoiceAttachment | None:
        """The per-session invoice of a CDR (issued in the CDR's transaction by billing's CDR hook), if any."""

    async def document_pdf(self, document_id: int) -> bytes | None:
        """The PDF of a document as issued (None when there is no such document)."""

    async def fleet_statement(self, fleet_id: int) -> BillingStatement:
        """The fleet's statement today: documents, payments and aging, with its CSV."""


@dataclass(slots=True)
class Services:
    """The slots components fill for each other; None means no component of this process provides it."""

    gateway: OcppGateway | None = None
    """The OCPP gateway (written by the gateway; read by OCPI commands, the chargers API, ``serve``)."""

    realtime_authorizer: RealTimeAuthorizer | None = None
    """Real-time authorization of unknown tokens (written by OCPI; read by the gateway's authorizer)."""

    pricing: Pricing | None = None
    """Rating on demand (written by pricing; read by the demo and tests that rate without waiting)."""

    outbox: OutboxDispatcher | None = None
    """The dispatcher delivering every outbox channel (written by OCPI; the portal runs its own e-mail-only
    dispatcher when this is None)."""

    billing: BillingDesk | None = None
    """Invoices, balances and payment methods for the portal and the receipts (written by billing)."""
