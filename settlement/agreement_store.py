"""The database side of settlement: agreements in and out, CDRs as the split's input table, closed periods.

Parties are named in settlement by their OCPI key ``COUNTRY*PARTY`` (e.g. ``NL*AMP``); agreements use the same
labels. A CDR's ``country`` (the VAT jurisdiction of hub fees) is its location's ISO 3166 alpha-3 country, as
in OCPI; energy is taken to the Wh.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kernel.energy import kwh_to_the_wh
from kernel.models import Agreement, Cdr, Location, Party, SettlementRun
from settlement.agreements import AgreementBook, check_change, dump_agreements, parse_agreements
from settlement.periods import closed_until
from settlement.references import known_references, reference_problems

UNKNOWN_EMSP = "UNKNOWN"


class AgreementChangeError(ValueError):
    """A change that would rewrite a closed period, or an inconsistent set."""


def party_label(party: Party | None) -> str:
    return f"{party.country_code}*{party.party_id}" if party is not None else UNKNOWN_EMSP


async def load_agreements(s: AsyncSession) -> list[Any]:
    rows = (await s.scalars(select(Agreement).order_by(Agreement.agreement_id, Agreement.version))).all()
    return parse_agreements([r.data for r in rows])


async def load_book(s: AsyncSession) -> AgreementBook:
    return AgreementBook(await load_agreements(s))


async def load_closes(s: AsyncSession) -> dict[str, datetime]:
    """Closed periods and when each closed (the first closing run of the period)."""
    rows = (
        await s.execute(
            select(SettlementRun.period, SettlementRun.closed_at)
            .where(SettlementRun.closed_at.is_not(None))
            .order_by(SettlementRun.closed_at)
        )
    ).all()
    closes: dict[str, datetime] = {}
    for period, closed_at in rows:
        closes.setdefault(period, closed_at)
    return closes


async def add_agreements(s: AsyncSession, items: Sequence[dict[str, Any]]) -> list[Any]:
    """Store new agreement versions after checking they neither edit a stored version nor a closed period."""
    try:
        proposed = parse_agreements(items)
    except ValueError as exc:
        raise AgreementChangeError(f"invalid agreements: {exc}") from None
    existing = await load_agreements(s)
    stored = {(a.agreement_id, a.version) for a in existing}
    problems: list[str] = reference_problems(proposed, await known_references(s))
    for a in proposed:
        if (a.agreement_id, a.version) in stored:
            problems.append(
                f"{a.ref} exists already; agreements are never edited, add version {a.version + 1}"
            )
    frozen_until = closed_until(await load_closes(s))
    accepted: list[Any] = list(existing)
    for a in proposed:
        problems += check_change(accepted, a, frozen_until)
        accepted.append(a)
    if not problems:
        try:
            AgreementBook([*existing, *proposed])
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise AgreementChangeError("; ".join(problems))
    for a in dump_agreements(proposed):
        s.add(
            Agreement(
                agreement_id=a["agreement_id"],
                version=a["version"],
                kind=a["kind"],
                valid_from=datetime.fromisoformat(str(a["valid_from"])).date(),
                valid_until=datetime.fromisoformat(str(a["valid_until"])).date()
                if a.get("valid_until")
                else None,
                data=a,
            )
        )
    await s.flush()
    return proposed


def _component(data: dict[str, Any], name: str, side: str) -> Decimal:
    value = (data.get(name) or {}).get(side)
    return Decimal(str(value)) if value is not None else Decimal(0)


async def cdr_table(s: AsyncSession, *, until: datetime | None = None) -> pd.DataFrame:
    """Every CDR (optionally ended before ``until``) as the Decimal table :func:`settlement.cdrs.prepare_cdrs`
    reads. Amounts come from the stored OCPI CDR, exactly."""
    cpo, emsp = aliased(Party), aliased(Party)
    query = (
        select(Cdr, cpo, emsp, Location)
        .join(cpo, Cdr.cpo_id == cpo.id)
        .outerjoin(emsp, Cdr.emsp_id == emsp.id)
        .outerjoin(Location, Cdr.location_id == Location.id)
        .order_by(Cdr.id)
    )
    if until is not None:
        query = query.where(Cdr.end_date_time < until)
    rows = (await s.execute(query)).all()
    uid_of = {c.id: c.cdr_uid for c, *_ in rows}
    records = []
    for cdr, cpo_row, emsp_row, loc in rows:
        data = cdr.data or {}
        record: dict[str, Any] = {
            "cdr_id": cdr.cdr_uid,
            "cpo": party_label(cpo_row),
            "emsp": party_label(emsp_row),
            "location_id": loc.ocpi_id if loc else "",
            "country": loc.country if loc else "",
            "currency": cdr.currency,
            "end_date_time": cdr.end_date_time,
            "created_at": cdr.created_at,
            "total_energy": kwh_to_the_wh(cdr.total_energy_kwh),
            "total_cost_excl_vat": cdr.total_cost_excl_vat,
            "total_cost_incl_vat": cdr.total_cost_incl_vat
            if cdr.total_cost_incl_vat is not None
            else cdr.total_cost_excl_vat,
            "is_credit": cdr.is_credit,
            "credit_of": uid_of.get(cdr.credit_of) if cdr.credit_of else None,
        }
        for component, field in (
            ("energy", "total_energy_cost"),
            ("time", "total_time_cost"),
            ("parking", "total_parking_cost"),
            ("fixed", "total_fixed_cost"),
        ):
            record[f"total_{component}_cost_excl_vat"] = _component(data, field, "excl_vat")
            record[f"total_{component}_cost_incl_vat"] = _component(data, field, "incl_vat")
        records.append(record)
    columns = [
        "cdr_id",
        "cpo",
        "emsp",
        "location_id",
        "country",
        "currency",
        "end_date_time",
        "created_at",
        "total_energy",
        "total_cost_excl_vat",
        "total_cost_incl_vat",
        "is_credit",
        "credit_of",
        *[
            f"total_{c}_cost_{s}_vat"
            for c in ("energy", "time", "parking", "fixed")
            for s in ("excl", "incl")
        ],
    ]
    return pd.DataFrame.from_records(records, columns=columns)


async def parties_by_label(s: AsyncSession) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in (await s.scalars(select(Party).order_by(Party.id))).all():
        out.setdefault(party_label(p), p.id)
    return out
