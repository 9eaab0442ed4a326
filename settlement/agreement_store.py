"""Agreements in the database: load them (as a book for the split), and add new versions after checking they
edit neither a stored version nor a closed period, and name no party or location against what the hub knows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Agreement, Location, Party, PartyRole
from settlement.core.accounting_periods import closed_until
from settlement.core.agreements import (
    AgreementBook,
    AnyAgreement,
    check_change,
    dump_agreements,
    parse_agreements,
)
from settlement.core.references import KnownReferences, reference_problems
from settlement.run_inputs import load_closes, party_label


class AgreementChangeError(ValueError):
    """A change that would rewrite a closed period, or an inconsistent set."""


async def load_agreements(db_session: AsyncSession) -> list[AnyAgreement]:
    """Every stored agreement version, validated."""
    rows = (
        await db_session.scalars(select(Agreement).order_by(Agreement.agreement_id, Agreement.version))
    ).all()
    return parse_agreements([r.data for r in rows])


async def load_book(db_session: AsyncSession) -> AgreementBook:
    """The stored agreements as the book the split reads."""
    return AgreementBook(await load_agreements(db_session))


async def known_references(db_session: AsyncSession) -> KnownReferences:
    """The parties' roles and the locations' CPOs, as :func:`~settlement.core.references.reference_problems`
    checks agreements against."""
    roles: dict[str, set[str]] = defaultdict(set)
    by_id: dict[int, str] = {}
    for party in (await db_session.scalars(select(Party))).all():
        label = party_label(party)
        roles[label].add(PartyRole(party.role).value)
        by_id[party.id] = label
    rows = (await db_session.execute(select(Location.cpo_id, Location.ocpi_id))).all()
    return KnownReferences(dict(roles), {(by_id.get(cpo_id, ""), ocpi_id) for cpo_id, ocpi_id in rows})


async def add_agreements(db_session: AsyncSession, items: Sequence[dict[str, Any]]) -> list[AnyAgreement]:
    """Store new agreement versions after checking they neither edit a stored version nor a closed period."""
    try:
        proposed = parse_agreements(items)
    except ValueError as exc:
        raise AgreementChangeError(f"invalid agreements: {exc}") from None
    existing = await load_agreements(db_session)
    stored = {(a.agreement_id, a.version) for a in existing}
    problems: list[str] = reference_problems(proposed, await known_references(db_session))
    for a in proposed:
        if (a.agreement_id, a.version) in stored:
            problems.append(
                f"{a.ref} exists already; agreements are never edited, add version {a.version + 1}"
            )
    frozen_until = closed_until(await load_closes(db_session))
    accepted: list[AnyAgreement] = list(existing)
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
    for row in dump_agreements(proposed):
        db_session.add(
            Agreement(
                agreement_id=row["agreement_id"],
                version=row["version"],
                kind=row["kind"],
                valid_from=datetime.fromisoformat(str(row["valid_from"])).date(),
                valid_until=datetime.fromisoformat(str(row["valid_until"])).date()
                if row.get("valid_until")
                else None,
                data=row,
            )
        )
    await db_session.flush()
    return proposed
