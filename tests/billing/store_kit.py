"""Billing store test kit (issue 14): an issuer, priced CDR rows with the pricing engine's explanation shape
(``tariffs.core.render.explanation``), credit CDRs made by ``tariffs.rating.credit_for``, and issuing one
invoice; shared by the store, numbering and CLI tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import billing
from billing.core.documents import Address, Identity, PaymentTerms
from billing.core.numbering import Series
from kernel.db.engine import Database
from kernel.models import (
    BillingDocument,
    Cdr,
    ChargePoint,
    ChargingSession,
    OcppVersion,
    Party,
    PartyRole,
)
from tariffs.rating import credit_for

D = Decimal
T0 = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
ISSUE = date(2026, 6, 3)
SELLER = Identity(
    "Voltstreet Charging B.V.",
    Address("Keizersgracht 1", "1015 CJ", "Amsterdam", "NL"),
    vat_id="NL123456789B01",
    registration_id="KvK 11223344",
    business=True,
)
CONSUMER = Identity("Ada Driver", Address("Damrak 5", "1012 LG", "Amsterdam", "NL"))
ISSUER = billing.Issuer(
    key="voltstreet",
    identity=SELLER,
    currency="EUR",
    invoice_series=Series("INV"),
    credit_series=Series("CN"),
    terms=PaymentTerms(14),
)
# (dimension, quantity, unit price, VAT %, net, incl. VAT): the engine's rounded lines of one session.
LINES = [
    ("ENERGY", "12.3456", "0.35", "21", "4.32", "5.23"),
    ("TIME", "1.5", "2.00", "21", "3.00", "3.63"),
    ("FLAT", "1", "0.50", "9", "0.50", "0.55"),
]


def explanation() -> dict[str, object]:
    return {
        "currency": "EUR",
        "lines": [
            {
                "kind": "component",
                "dimension": dim,
                "quantity": q,
                "unit_price": price,
                "vat": vat,
                "amount_excl_vat": net,
                "amount_incl_vat": incl,
            }
            for dim, q, price, vat, net, incl in LINES
        ],
    }


async def add_cdrs(db: Database, n: int) -> list[int]:
    """``n`` priced CDRs, one per charging session, of one CPO; their ids."""
    async with db.session() as s:
        cpo = Party(country_code="NL", party_id="VLT", role=PartyRole.CPO, name="Voltstreet")
        s.add(cpo)
        await s.flush()
        cp = ChargePoint(identity="CP-1", ocpp_version=OcppVersion.V16, cpo_id=cpo.id)
        s.add(cp)
        await s.flush()
        ids = []
        for i in range(n):
            start = T0 + timedelta(hours=2 * i)
            sess = ChargingSession(
                session_uid=f"s-{i}",
                charge_point_id=cp.id,
                transaction_id=str(i),
                cpo_id=cpo.id,
                start_time=start,
                last_updated=start,
            )
            s.add(sess)
            await s.flush()
            cdr = Cdr(
                cdr_uid=f"CDR-{i}",
                session_id=sess.id,
                cpo_id=cpo.id,
                currency="EUR",
                start_date_time=start,
                end_date_time=start + timedelta(hours=1, minutes=30),
                total_energy_kwh=D("12.3456"),
                total_time_hours=D("1.5"),
                total_cost_excl_vat=D("7.82"),
                total_cost_incl_vat=D("9.41"),
                explanation=explanation(),
                data={"id": f"CDR-{i}", "session_id": f"s-{i}"},
            )
            s.add(cdr)
            await s.flush()
            ids.append(cdr.id)
        return ids


async def add_issuer(db: Database) -> None:
    async with db.session() as s:
        await billing.add_issuer(s, ISSUER)


async def without_registration_id(db: Database, key: str) -> None:
    """Issuer ``key`` as one stored before a registration id was required (``add_issuer`` wants one now): what
    it cannot invoice outside the scope of VAT is held."""
    async with db.session() as s:
        (await billing.get_issuer(s, key)).registration_id = None


async def add_credit(db: Database, cdr_id: int) -> int:
    async with db.session() as s:
        original = await s.get(Cdr, cdr_id)
        assert original is not None
        credit = credit_for(original, f"s-{cdr_id}", now=T0 + timedelta(days=1))
        s.add(credit)
        await s.flush()
        return credit.id


async def issue(db: Database, cdr_id: int, day: date = ISSUE) -> BillingDocument:
    async with db.session() as s:
        return await billing.issue_session_invoice(
            s, issuer_key="voltstreet", cdr_id=cdr_id, buyer=CONSUMER, issue_date=day
        )
