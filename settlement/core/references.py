"""What an agreement names must not contradict what the hub has: a party in another role, a location of
another CPO, a VAT country that no CDR can carry.

Such an agreement would never apply to any CDR and fail silently at settlement time
(``no_roaming_agreement``, ``no_hub_vat_rate``). A name the hub does not know *yet* is accepted: an eMSP
becomes a party when it registers over OCPI, which may come after its roaming agreement is signed.
:func:`reference_problems` lists the contradictions with :class:`KnownReferences` (pure);
:func:`settlement.agreement_store.known_references` reads what exists.
Labels are the settlement's ``COUNTRY*PARTY`` keys; VAT countries are ISO 3166 alpha-3, as the CDR's
``country`` (its location's) is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pycountry

from kernel.models import PartyRole

from .agreements import ALL_CPOS, AnyAgreement

DEFAULT_HUB = "HUB"
"""The hub fee's default ``hub`` label, accepted without a party of that name."""


@dataclass(frozen=True)
class KnownReferences:
    roles: dict[str, set[str]] = field(default_factory=dict)  # party label -> its roles
    locations: set[tuple[str, str]] = field(default_factory=set)  # (CPO label, location id)


def _country(code: str) -> bool:
    return len(code) == 3 and pycountry.countries.get(alpha_3=code) is not None


def _party(where: str, name: str, label: str, role: PartyRole, known: KnownReferences) -> list[str]:
    have = known.roles.get(label, set())
    if not have or role.value in have:
        return []
    return [
        f"{where}: {name} {label} is registered as {'/'.join(sorted(have))}, not {role.value} "
        "(see `evhub parties list`)"
    ]


def reference_problems(agreements: Sequence[AnyAgreement], known: KnownReferences) -> list[str]:
    """One message per name in ``agreements`` that contradicts ``known`` (empty list = none)."""
    problems: list[str] = []
    for index, a in enumerate(agreements):
        where = f"agreements[{index}] ({a.kind} {a.ref})"
        if a.kind == "roaming":
            problems += _party(where, "emsp", a.emsp, PartyRole.EMSP, known)
            problems += _party(where, "cpo", a.cpo, PartyRole.CPO, known)
        elif a.kind == "hub_fee":
            if a.cpo != ALL_CPOS:
                problems += _party(where, "cpo", a.cpo, PartyRole.CPO, known)
            if a.hub != DEFAULT_HUB:
                problems += _party(where, "hub", a.hub, PartyRole.HUB, known)
            problems += [
                f"{where}: vat_rates {code!r} is not an ISO 3166 alpha-3 country (CDRs carry their "
                "location's, e.g. NLD)"
                for code in a.vat_rates
                if not _country(code)
            ]
        elif a.kind == "site_host":
            problems += _party(where, "site_host", a.site_host, PartyRole.SITE_HOST, known)
            problems += _party(where, "cpo", a.cpo, PartyRole.CPO, known)
            owners = sorted(cpo for cpo, loc in known.locations if loc == a.location_id)
            if owners and a.cpo not in owners:
                problems.append(
                    f"{where}: location_id {a.location_id} is a location of {', '.join(owners)}, not {a.cpo}"
                )
    return problems
