"""A CPO, a location with EVSEs and connectors, and a charger, made from scratch (no demo data): the smallest
site a roaming test needs. :data:`T0` is when these things were last updated."""

from __future__ import annotations

from datetime import UTC, datetime

from kernel.db.engine import Database
from kernel.models import EVSE, ChargePoint, Connector, Location, OcppVersion, Party, PartyRole

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def seed_cpo(db: Database, cc: str = "NL", pid: str = "CPO", name: str = "Hosted CPO") -> int:
    """A CPO party; returns its pk."""
    async with db.session() as s:
        party = Party(country_code=cc, party_id=pid, role=PartyRole.CPO, name=name)
        s.add(party)
        await s.flush()
        return party.id


async def seed_location(
    db: Database,
    cpo_id: int,
    ocpi_id: str = "LOC1",
    evses: int = 2,
    *,
    publish: bool = True,
    updated: datetime = T0,
) -> int:
    """A location in Utrecht with ``evses`` EVSEs (uids ``{ocpi_id}-E1``...), one AC socket each; returns its pk."""
    async with db.session() as s:
        loc = Location(
            cpo_id=cpo_id,
            ocpi_id=ocpi_id,
            name=f"Site {ocpi_id}",
            address="Stationsplein 1",
            city="Utrecht",
            postal_code="3511",
            country="NLD",
            latitude="52.089400",
            longitude="5.110100",
            time_zone="Europe/Amsterdam",
            publish=publish,
            data={"parking_type": "ON_STREET"},
            last_updated=updated,
        )
        for n in range(1, evses + 1):
            evse = EVSE(
                uid=f"{ocpi_id}-E{n}",
                evse_id=f"NL*CPO*E{ocpi_id}{n}",
                status="AVAILABLE",
                last_updated=updated,
            )
            evse.connectors.append(
                Connector(
                    connector_id="1",
                    standard="IEC_62196_T2",
                    format="SOCKET",
                    power_type="AC_3_PHASE",
                    max_voltage=230,
                    max_amperage=32,
                    last_updated=updated,
                )
            )
            loc.evses.append(evse)
        s.add(loc)
        await s.flush()
        return loc.id


async def seed_charge_point(db: Database, cpo_id: int, location_id: int, identity: str = "CP1") -> int:
    """An OCPP 1.6 charger at the location (no password, no EVSE mapping); returns its pk."""
    async with db.session() as s:
        cp = ChargePoint(
            identity=identity, ocpp_version=OcppVersion.V16, cpo_id=cpo_id, location_id=location_id
        )
        s.add(cp)
        await s.flush()
        return cp.id
