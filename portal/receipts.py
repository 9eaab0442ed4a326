"""Drivers' receipt emails: one per priced CDR whose token has a driver email, sent through the durable outbox.

* :func:`enqueue_receipt` is called in the CDR's own transaction: the receipt is rendered (HTML and text) and
  queued as an outbox message of channel ``"email"`` with ``dedupe_key = "receipt:<cdr_uid>"``, and a
  ``receipts`` row records it. Calling it twice, or from the scanner as well, queues nothing twice.
* :func:`scan_missing_receipts` is the safety net run by the scheduler: it enqueues receipts for recent CDRs
  that have no ``receipts`` row (e.g. priced by a path that did not call :func:`enqueue_receipt`).
* :func:`make_email_sender` is the outbox channel's sender: SMTP down -> retried later by the outbox; a
  refused address or rejected message (5xx) -> dead-lettered and the receipt marked ``bounced``.
* :func:`record_bounce` records a bounce reported later (a DSN) against the receipt.

When billing runs (``hub.services.billing``, :class:`kernel.seams.BillingDesk`) and has issued a per-session
invoice for the CDR (a driver without a contract: billing's CDR hook runs before the receipt hook, in the same
transaction), the receipt is that invoice: the subject names the invoice number, the HTML body is the invoice's
own HTML (the session's details above it, the signed meter data's check below it), the text body the invoice as
text, and the invoice's PDF (with its Factur-X XML) goes with it, next to the signed meter data: printed by the
sender from the issued document when the e-mail goes out (never inside the CDR's transaction).

The signed meter data (OCPI ``signed_data`` of the CDR, else the meter values' or the session's signed data;
OCMF as its text) goes with the email as an attachment, so the driver can check it with transparency software,
and the receipt says how the hub's own check went (``sessions.signed_verification``, made at pricing): "Signed
meter data: verified", "unverifiable (reason)" or "INVALID (reason)" (an invalid one is not in the CDR, and
is still attached, so the driver can see for themselves).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel import metrics
from kernel.db.engine import Database
from kernel.domain.cdr_holder import holder_of
from kernel.energy import format_kwh
from kernel.models import EVSE, Cdr, ChargingSession, Location, MeterValue, OutboxMessage, Token
from kernel.models.portal import Receipt, ReceiptStatus
from kernel.money import round_amount
from kernel.outbox import DeliveryResult, enqueue, mark_sending
from kernel.seams import BillingDesk, InvoiceAttachment
from kernel.signed_meter import describe, ocmf_text
from kernel.timeutil import to_local, utcnow
from portal.smtp import SmtpConfig, send_email

log = logging.getLogger(__name__)

CHANNEL = "email"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates" / "email"
_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    keep_trailing_newline=True,
)

DIMENSION_NAMES = {
    "ENERGY": ("Energy", "kWh"),
    "TIME": ("Charging time", "h"),
    "PARKING_TIME": ("Parking time", "h"),
    "RESERVATION_TIME": ("Reservation time", "h"),
    "FLAT": ("Session fee", ""),
    "MIN_PRICE": ("Minimum price adjustment", ""),
    "MAX_PRICE": ("Maximum price adjustment", ""),
}


def dedupe_key(cdr: Cdr) -> str:
    return f"receipt:{cdr.cdr_uid}"


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@dataclass
class ReceiptLine:
    name: str
    quantity: str
    unit_price: str
    vat_rate: str
    amount_excl: str
    amount_incl: str


@dataclass
class ReceiptView:
    """Everything a receipt shows, already formatted."""

    cdr_uid: str
    corrected: bool
    driver: str
    token_uid: str
    vehicle: str
    location_name: str
    location_address: str
    evse: str
    time_zone: str
    start_local: str
    stop_local: str
    duration: str
    energy_kwh: str
    meter_start_kwh: str
    meter_stop_kwh: str
    currency: str
    lines: list[ReceiptLine]
    total_excl: str
    vat: str
    total_incl: str
    tariffs: list[str]
    signed_data: str | None
    signed_data_format: str | None
    signed_data_url: str | None
    public_key: str | None
    signed_status: str | None = None  # "verified", "unverifiable (reason)", "INVALID (reason)"
    extra: dict[str, Any] = field(default_factory=dict)


def _kwh_from_wh(value: Decimal | None) -> str:
    return format_kwh(value / 1000) if value is not None else "—"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _lines(cdr: Cdr) -> list[ReceiptLine]:
    cur = cdr.currency
    out = []
    for ln in (cdr.explanation or {}).get("lines") or []:
        if not isinstance(ln, dict):
            continue
        kind = str(ln.get("kind") or "component")
        dim = str(ln.get("dimension") or "")
        name, unit = DIMENSION_NAMES.get(dim if kind == "component" else kind, (dim or kind, ""))
        qty = _dec(ln.get("quantity"))
        price = _dec(ln.get("unit_price"))
        vat = _dec(ln.get("vat"))
        excl = _dec(ln.get("amount_excl_vat")) or Decimal(0)
        incl = _dec(ln.get("amount_incl_vat"))
        out.append(
            ReceiptLine(
                name=name,
                quantity=f"{qty.normalize():f} {unit}".strip()
                if qty is not None and kind == "component"
                else "",
                unit_price=f"{price.normalize():f} {cur}/{unit or 'session'}" if price is not None else "",
                vat_rate=f"{vat.normalize():f} %" if vat is not None else "",
                amount_excl=str(round_amount(excl, cur)),
                amount_incl=str(round_amount(incl, cur)) if incl is not None else "",
            )
        )
    return out


def _readable(blob: str) -> str:
    """Signed data as the driver's transparency software reads it: OCMF as its text (the CDR has it base64
    encoded, a 1.6 charger may send it hex), anything else as it is."""
    return ocmf_text(blob) or blob


def _signed_data(cdr: Cdr, sess: ChargingSession | None, samples: list[MeterValue]) -> dict[str, str | None]:
    sd = (cdr.data or {}).get("signed_data")
    if isinstance(sd, dict) and sd.get("signed_values"):
        blocks = []
        for v in sd["signed_values"]:
            blocks.append(f"[{v.get('nature', '')}]\n{_readable(str(v.get('signed_data', '')))}")
        return {
            "data": "\n\n".join(blocks),
            "format": str(sd.get("encoding_method") or ""),
            "url": sd.get("url"),
            "public_key": sd.get("public_key"),
        }
    signed = [m for m in samples if m.signed_data]
    if signed:
        begin = next((m for m in signed if m.context == "Transaction.Begin"), signed[0])
        end = next((m for m in reversed(signed) if m.context == "Transaction.End"), signed[-1])
        picks = [begin] if begin is end else [begin, end]
        text = "\n\n".join(
            f"[{m.context} {m.timestamp.isoformat()}]\n{_readable(m.signed_data or '')}" for m in picks
        )
        fmt = "OCMF" if all(ocmf_text(m.signed_data or "") for m in picks) else None
        return {"data": text, "format": fmt, "url": None, "public_key": None}
    if sess is not None and sess.signed_meter_data:
        fmt = "OCMF" if ocmf_text(sess.signed_meter_data) else None
        return {"data": _readable(sess.signed_meter_data), "format": fmt, "url": None, "public_key": None}
    return {"data": None, "format": None, "url": None, "public_key": None}


def _their_address(where: dict[str, Any]) -> str:
    """The address of an external CPO's CdrLocation (a received CDR's), as a receipt prints one."""
    if not where.get("address"):
        return ""
    return f"{where['address']}, {where.get('postal_code') or ''} {where.get('city') or ''}".replace(
        "  ", " "
    )


async def build_view(db_session: AsyncSession, cdr: Cdr, token: Token) -> ReceiptView:
    sess = await db_session.get(ChargingSession, cdr.session_id)
    loc = await db_session.get(Location, cdr.location_id or (sess.location_id if sess else None) or -1)
    evse = await db_session.get(EVSE, sess.evse_pk) if sess is not None and sess.evse_pk else None
    samples = list(
        (
            await db_session.execute(
                select(MeterValue)
                .where(MeterValue.session_id == cdr.session_id, MeterValue.signed_data.is_not(None))
                .order_by(MeterValue.timestamp)
            )
        ).scalars()
    )
    tz = loc.time_zone if loc is not None else "UTC"
    # a CDR an external CPO posted (the hub is the card's eMSP there): its own CdrLocation, no row of the hub's
    theirs = (cdr.data or {}).get("cdr_location") if loc is None and cdr.received else None
    theirs = theirs if isinstance(theirs, dict) else {}
    start, stop = cdr.start_date_time, cdr.end_date_time
    cur = cdr.currency
    excl = round_amount(cdr.total_cost_excl_vat, cur)
    incl = round_amount(cdr.total_cost_incl_vat, cur) if cdr.total_cost_incl_vat is not None else excl
    tariffs = []
    for t in (cdr.explanation or {}).get("tariffs_used") or []:
        if isinstance(t, dict):
            tariffs.append(f"{t.get('tariff_id')} ({t.get('version')})")
    if not tariffs:
        tariffs = [str(t) for t in (cdr.tariff_versions or [])]
    signed = _signed_data(cdr, sess, samples)
    holder = holder_of(cdr, token)  # the driver and vehicle when the CDR was made, not the token's now
    fmt = "%Y-%m-%d %H:%M:%S %Z"
    return ReceiptView(
        cdr_uid=cdr.cdr_uid,
        corrected=cdr.revision > 0,
        driver=holder.driver_name or "",
        token_uid=token.visual_number or token.uid,
        vehicle=holder.vehicle or "",
        location_name=(loc.name or loc.address) if loc is not None else str(theirs.get("name") or ""),
        location_address=f"{loc.address}, {loc.postal_code or ''} {loc.city}".replace("  ", " ")
        if loc
        else _their_address(theirs),
        evse=(evse.evse_id or evse.uid) if evse is not None else str(theirs.get("evse_id") or ""),
        time_zone=tz,
        start_local=to_local(start, tz).strftime(fmt),
        stop_local=to_local(stop, tz).strftime(fmt),
        duration=_duration(stop - start),
        energy_kwh=format_kwh(cdr.total_energy_kwh),
        meter_start_kwh=_kwh_from_wh(sess.meter_start_wh if sess else None),
        meter_stop_kwh=_kwh_from_wh(sess.meter_stop_wh if sess else None),
        currency=cur,
        lines=_lines(cdr),
        total_excl=str(excl),
        vat=str(round_amount(incl - excl, cur)),
        total_incl=str(incl),
        tariffs=tariffs,
        signed_data=signed["data"],
        signed_data_format=signed["format"],
        signed_data_url=signed["url"],
        public_key=signed["public_key"],
        signed_status=describe(sess.signed_verification, sess.signed_verification_reason) if sess else None,
    )


_BODY_OPEN = re.compile(r"<body[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body>", re.IGNORECASE)


def _signed_attachment(view: ReceiptView) -> list[dict[str, str]]:
    if not view.signed_data:
        return []
    return [
        {
            "filename": f"signed-meter-data-{view.cdr_uid}.txt",
            "content_type": "text/plain",
            "content": view.signed_data + "\n",
        }
    ]


def _body_of(html: str) -> str:
    """What is inside an HTML document's ``<body>`` (all of it when it has none)."""
    opened = _BODY_OPEN.search(html)
    closed = list(_BODY_CLOSE.finditer(html))
    start = opened.end() if opened else 0
    end = closed[-1].start() if closed and closed[-1].start() >= start else len(html)
    return html[start:end]


def render_invoice(view: ReceiptView, invoice: InvoiceAttachment) -> dict[str, Any]:
    """Subject, text, HTML and attachments of a receipt that is the session's invoice."""
    parts = [invoice, *invoice.others]  # with the session's invoice outside VAT, when it has one
    numbers = " and ".join(p.number for p in parts)
    subject = (
        f"Invoice{'s' if len(parts) > 1 else ''} {numbers}: {view.location_name}, {view.start_local[:10]} — "
    )
    subject += f"{view.total_incl} {view.currency}"
    intro = _env.get_template("invoice_receipt.html").render(r=view, inv=invoice, parts=parts)
    signed = _env.get_template("invoice_receipt_signed.html").render(r=view)
    signed = "".join(_body_of(other.html) for other in invoice.others) + signed
    html = invoice.html
    opened = _BODY_OPEN.search(html)
    html = html[: opened.end()] + intro + html[opened.end() :] if opened else intro + html
    closed = list(_BODY_CLOSE.finditer(html))
    html = html[: closed[-1].start()] + signed + html[closed[-1].start() :] if closed else html + signed
    # the invoice's PDF is printed by the sender from the issued document (not in the CDR's transaction)
    attachments: list[dict[str, Any]] = [
        {"filename": p.filename, "content_type": "application/pdf", "billing_document_id": p.document_id}
        for p in parts
    ]
    return {
        "subject": subject,
        "text": _env.get_template("invoice_receipt.txt").render(r=view, inv=invoice, parts=parts),
        "html": html,
        "attachments": attachments + _signed_attachment(view),
        "invoice": invoice.number,
    }


def render(view: ReceiptView) -> dict[str, Any]:
    """Subject, text, HTML and attachments of a receipt."""
    subject = f"{'Corrected receipt' if view.corrected else 'Your charging receipt'}: {view.location_name}, "
    subject += f"{view.start_local[:10]} — {view.total_incl} {view.currency}"
    return {
        "subject": subject,
        "text": _env.get_template("receipt.txt").render(r=view),
        "html": _env.get_template("receipt.html").render(r=view),
        "attachments": _signed_attachment(view),
    }


async def _session_invoice(
    db_session: AsyncSession, cdr: Cdr, billing: BillingDesk | None
) -> InvoiceAttachment | None:
    """The CDR's per-session invoice from the billing desk, if billing runs and issued one (a failure here
    leaves the receipt as it is without billing: the invoice stays issued and printable in the portal)."""
    if billing is None:
        return None
    try:
        return await billing.session_invoice(db_session, cdr.id)
    except Exception:
        log.exception("could not render the invoice of CDR %s for its receipt", cdr.cdr_uid)
        return None


async def enqueue_receipt(
    db_session: AsyncSession, cdr: Cdr, billing: BillingDesk | None = None
) -> Receipt | None:
    """Queue the receipt of ``cdr`` in the caller's transaction (idempotent). Returns its ``receipts`` row,
    or None for a credit CDR (no receipt for a credit note; the corrected CDR gets a corrected receipt).
    With ``billing`` (the billing desk), a CDR with a per-session invoice gets the invoice as its receipt."""

    if cdr.is_credit:
        return None
    if cdr.id is None:
        await db_session.flush()
    existing = (
        await db_session.execute(select(Receipt).where(Receipt.cdr_id == cdr.id))
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    token = await db_session.get(Token, cdr.token_id) if cdr.token_id else None
    email = (token.driver_email or "").strip() if token is not None else ""
    if token is None or not email:
        receipt = Receipt(
            cdr_id=cdr.id,
            token_id=token.id if token else None,
            status=ReceiptStatus.SKIPPED,
            error="no driver email" if token is not None else "no token",
        )
        db_session.add(receipt)
        await db_session.flush()
        return receipt
    view = await build_view(db_session, cdr, token)
    invoice = await _session_invoice(db_session, cdr, billing)
    body = render_invoice(view, invoice) if invoice is not None else render(view)
    message_id = f"<receipt.{cdr.cdr_uid}@evhub>"
    payload = {"kind": "receipt", "cdr_id": cdr.id, "to": email, "message_id": message_id, **body}
    await enqueue(
        db_session,
        CHANNEL,
        destination=email,
        ordering_key=f"receipt:{cdr.cdr_uid}",
        payload=payload,
        dedupe_key=dedupe_key(cdr),
    )
    receipt = Receipt(
        cdr_id=cdr.id, token_id=token.id, email=email, status=ReceiptStatus.QUEUED, message_id=message_id
    )
    db_session.add(receipt)
    await db_session.flush()
    return receipt


async def scan_missing_receipts(
    db: Database,
    *,
    max_age: timedelta = timedelta(days=7),
    limit: int = 200,
    billing: BillingDesk | None = None,
) -> int:
    """Enqueue receipts for recent CDRs without one. Returns how many receipts rows were created."""
    since = utcnow() - max_age
    async with db.session() as db_session:
        ids = list(
            (
                await db_session.execute(
                    select(Cdr.id)
                    .outerjoin(Receipt, Receipt.cdr_id == Cdr.id)
                    .where(and_(Receipt.id.is_(None), Cdr.is_credit.is_(False), Cdr.created_at >= since))
                    .order_by(Cdr.id)
                    .limit(limit)
                )
            ).scalars()
        )
    created = 0
    for cdr_id in ids:
        try:
            async with db.session() as db_session:
                cdr = await db_session.get(Cdr, cdr_id)
                if cdr is not None and await enqueue_receipt(db_session, cdr, billing) is not None:
                    created += 1
        except IntegrityError:  # the CDR's own transaction (or another node) got there first
            continue
        except Exception:
            log.exception("could not enqueue the receipt of CDR %s", cdr_id)
    return created


async def _mark(db: Database, cdr_id: int | None, **values: Any) -> None:
    """The receipt's bookkeeping after a send. It never raises: the send's outcome is what the outbox must learn
    (a failure here, e.g. no database connection free, once turned a sent or a refused e-mail into an uncertain
    one, parked and never sent: a receipt lost in the fault suite)."""
    if cdr_id is None:
        return
    try:
        async with db.session() as db_session:
            receipt = (
                await db_session.execute(select(Receipt).where(Receipt.cdr_id == cdr_id))
            ).scalar_one_or_none()
            if receipt is not None:
                for key, value in values.items():
                    setattr(receipt, key, value)
    except Exception as exc:
        log.warning("could not record the receipt of CDR %s (%s): %s", cdr_id, values.get("status"), exc)


async def _printed(attachments: list[dict[str, Any]], billing: BillingDesk | None) -> list[dict[str, Any]]:
    """The attachments with each billing document's PDF printed (``billing_document_id`` -> its bytes); a PDF
    that cannot be printed (no billing here, no Pango) is left out, and the e-mail still carries the invoice's
    HTML and text."""
    out = []
    for attachment in attachments:
        document_id = attachment.get("billing_document_id")
        if document_id is None:
            out.append(attachment)
            continue
        try:
            pdf = await billing.document_pdf(int(document_id)) if billing is not None else None
        except Exception:
            log.exception("could not print billing document %s for its e-mail", document_id)
            pdf = None
        if pdf is None:
            log.warning("e-mail sent without the PDF of billing document %s", document_id)
            continue
        rest = {k: v for k, v in attachment.items() if k != "billing_document_id"}
        out.append({**rest, "content_base64": base64.b64encode(pdf).decode("ascii")})
    return out


def make_email_sender(
    db: Database,
    config_getter: Callable[[], SmtpConfig | None],
    mail_from: str,
    billing_getter: Callable[[], BillingDesk | None] = lambda: None,
) -> Callable[[OutboxMessage], Awaitable[Any]]:
    """The ``"email"`` outbox channel sender (``billing_getter``: the billing desk that prints an invoice's PDF
    when its e-mail is sent)."""

    async def sender(message: OutboxMessage) -> DeliveryResult:
        config = config_getter()
        if config is None:
            return DeliveryResult.retry("EVHUB_SMTP_URL is not set", retry_after=300)
        payload = dict(message.payload)
        payload.setdefault("to", message.destination)
        if any("billing_document_id" in a for a in payload.get("attachments") or ()):
            payload["attachments"] = await _printed(list(payload["attachments"]), billing_getter())
        # an e-mail cannot be taken back: the attempt is recorded (with its Message-ID) before the send, and a
        # later attempt that finds the mark parks the row as uncertain instead of sending it twice
        payload.setdefault("message_id", f"<outbox.{message.id}@evhub>")
        if not await mark_sending(db, message, message_id=payload["message_id"]):
            return DeliveryResult.retry("the lease on this message was lost before sending")
        outcome = await send_email(config, payload, mail_from)
        cdr_id = payload.get("cdr_id")
        if outcome.uncertain:
            await _mark(db, cdr_id, error=outcome.error)
            error = outcome.error or "no answer after DATA"
            return DeliveryResult.unsure(error, message_id=payload["message_id"])
        # a dunning reminder travels the same channel but is no receipt: it has its own counter
        count = metrics.reminder_email if payload.get("kind") == "reminder" else metrics.receipt
        if outcome.ok:
            await _mark(db, cdr_id, status=ReceiptStatus.SENT, sent_at=utcnow(), error=None)
            count("sent")
            return DeliveryResult.delivered(smtp=f"{config.host}:{config.port}")
        if outcome.permanent:
            status = ReceiptStatus.BOUNCED if outcome.refused else ReceiptStatus.FAILED
            await _mark(db, cdr_id, status=status, error=outcome.error)
            count("bounced" if outcome.refused else "failed")
            return DeliveryResult.give_up(outcome.error or "refused")
        await _mark(db, cdr_id, error=outcome.error)
        return DeliveryResult.retry(outcome.error or "SMTP failure")

    return sender


async def record_bounce(db: Database, cdr_uid: str, reason: str) -> bool:
    """Record a bounce reported after delivery (a DSN naming the receipt). Returns False if unknown."""
    async with db.session() as db_session:
        row = (
            await db_session.execute(
                select(Receipt).join(Cdr, Cdr.id == Receipt.cdr_id).where(Cdr.cdr_uid == cdr_uid)
            )
        ).scalar_one_or_none()
        if row is None:
            return False
        row.status = ReceiptStatus.BOUNCED
        row.error = reason[:2000]
    metrics.receipt("bounced")
    return True
