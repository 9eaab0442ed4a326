"""The demo's received CDR (issue 14, item 4): the hub is the eMSP of its fleet cards at the external CPO BE*ION,
which posts the CDR of a session one of Acme's cards had at its charger in Gent, priced by its own tariff.

The hub stores it once (posted again, the same CDR answers success and adds nothing), serves it back at the URL
it answered, pushes it to no partner, bills it on the fleet's November invoice at the CPO's price
(:func:`on_the_invoice`) and settles it as NL*EVH's debt to BE*ION (the settlement table shows BE*ION).
Everything goes over the real OCPI 2.2.1 interface on loopback, through the simulator's own client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from sqlalchemy import select

import billing
from evhub.app import RunningHub
from kernel.models import BillingDocument, BillingDocumentCdr, Cdr, OutboxMessage
from kernel.money import format_amount, round_amount
from simulators.cpo import CpoSimulator

CDR_ID = "ION-CDR-0001"
EMSP = "NL*EVH"
START = datetime(2026, 11, 17, 14, 0, tzinfo=UTC)
"""The session at BE*ION's charger: the afternoon before the demo's evening, in November."""
KWH, HOURS = Decimal("20.0"), Decimal("1")


async def receive_from_cpo(
    hub: RunningHub, cpo: CpoSimulator, console: Console, uid: str
) -> tuple[Cdr, dict[str, Any]]:
    """BE*ION posts its CDR for card ``uid`` twice and reads it back; the stored row and the figures."""
    cdr = cpo.session_cdr(CDR_ID, uid, EMSP, START, KWH, HOURS)
    first = await cpo.post_cdr(cdr, EMSP)
    again = await cpo.post_cdr(cdr, EMSP)
    served = await cpo.get_cdr(first.location, EMSP) if first.location else None
    async with hub.db.session() as s:
        rows = list((await s.scalars(select(Cdr).where(Cdr.received.is_(True)).order_by(Cdr.id))).all())
    if not rows:
        raise RuntimeError(f"the hub stored no CDR of BE*ION: HTTP {first.http_status} {first.body}")
    row = rows[0]
    total = cdr["total_cost"]
    served_total = (served or {}).get("total_cost", {})
    money = f"{format_amount(total['excl_vat'], 'EUR')} excl. / {format_amount(total['incl_vat'], 'EUR')} incl. VAT"
    console.print(
        f"CPO BE*ION (the hub is its eMSP for {EMSP}) posted CDR {CDR_ID} of card {uid}: {KWH} kWh in "
        f"{HOURS} h at {cdr['cdr_location']['name']}, {money} by its own tariff — stored "
        f"(HTTP {first.http_status}, Location {first.location}); posted again: HTTP {again.http_status}, "
        f"{len(rows)} row; read back at its Location: {served_total.get('excl_vat')} excl. / {served_total.get('incl_vat')} incl. VAT",
        soft_wrap=True,
    )
    figures = {
        "id": CDR_ID,
        "token": uid,
        "answers": [first.http_status, again.http_status],
        "stored": len(rows),
        "read_back": served is not None and served.get("id") == CDR_ID,
        "total_excl_vat": str(round_amount(row.total_cost_excl_vat, row.currency)),
        "total_incl_vat": str(round_amount(row.total_cost_incl_vat or 0, row.currency)),
        "same_as_posted": (row.total_cost_excl_vat, row.total_cost_incl_vat)
        == (total["excl_vat"], total["incl_vat"]),
    }
    return row, figures


async def pushed_to_partners(hub: RunningHub, row: Cdr) -> int:
    """How many OCPI messages carry the received CDR: none (it is the CPO's, never pushed on)."""
    async with hub.db.session() as s:
        messages = (await s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "ocpi"))).all()
    return sum(1 for m in messages if (m.payload.get("body") or {}).get("id") == row.data.get("id"))


async def on_the_invoice(hub: RunningHub, console: Console, row: Cdr) -> dict[str, Any]:
    """The received CDR's lines on the fleet's monthly invoice: their net against the CPO's price."""
    async with hub.db.session() as s:
        document = await s.scalar(
            select(BillingDocument)
            .join(BillingDocumentCdr, BillingDocumentCdr.document_id == BillingDocument.id)
            .where(BillingDocumentCdr.cdr_id == row.id, BillingDocumentCdr.kind == billing.INVOICE)
        )
    if document is None:
        console.print(f"CDR {CDR_ID} of BE*ION is on no invoice")
        return {"invoice": None}
    lines = [ln for ln in billing.load_invoice(document.document).lines if ln.cdr_id == row.cdr_uid]
    net = sum((ln.net for ln in lines), Decimal(0))
    same = net == row.total_cost_excl_vat
    console.print(
        f"BE*ION's CDR {CDR_ID} on {document.number}: {len(lines)} line(s), "
        f"{format_amount(net, row.currency)} excl. VAT — the CPO's price to the cent: {'yes' if same else 'NO'}",
        soft_wrap=True,
    )
    return {"invoice": document.number, "lines": len(lines), "net": str(net), "cpo_price": same}
