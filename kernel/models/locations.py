"""Locations, EVSEs and connectors, shaped after OCPI 2.2.1, with each location's IANA time zone.

The full OCPI object is kept in ``data`` so nothing a CPO sent is lost; the columns are what the hub queries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, JSONDoc, UTCDateTime


class Location(Timestamped, Base):
    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("cpo_id", "ocpi_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), index=True)
    ocpi_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(255), default=None)
    address: Mapped[str] = mapped_column(String(45))
    city: Mapped[str] = mapped_column(String(45))
    postal_code: Mapped[str | None] = mapped_column(String(10), default=None)
    country: Mapped[str] = mapped_column(String(3))
    latitude: Mapped[str] = mapped_column(String(10))
    longitude: Mapped[str] = mapped_column(String(11))
    time_zone: Mapped[str] = mapped_column(String(64))
    grid_zone: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    publish: Mapped[bool] = mapped_column(Boolean, default=True)
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    evses: Mapped[list[EVSE]] = relationship(
        back_populates="location", cascade="all, delete-orphan", order_by="EVSE.id"
    )


# OCPI compares location ids (CiString(36)) in upper case, per CPO: GET by id, commands.
Index("ix_locations_cpo_id_ocpi_id_upper", Location.cpo_id, func.upper(Location.ocpi_id))


class EVSE(Timestamped, Base):
    __tablename__ = "evses"
    __table_args__ = (UniqueConstraint("location_id", "uid"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id", ondelete="CASCADE"), index=True)
    uid: Mapped[str] = mapped_column(String(36))
    evse_id: Mapped[str | None] = mapped_column(String(48), default=None)
    status: Mapped[str] = mapped_column(String(16), default="UNKNOWN")
    capabilities: Mapped[list] = mapped_column(JSONDoc, default=list)
    physical_reference: Mapped[str | None] = mapped_column(String(16), default=None)
    floor_level: Mapped[str | None] = mapped_column(String(4), default=None)
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime())

    location: Mapped[Location] = relationship(back_populates="evses")
    connectors: Mapped[list[Connector]] = relationship(
        back_populates="evse", cascade="all, delete-orphan", order_by="Connector.id"
    )


class Connector(Timestamped, Base):
    __tablename__ = "connectors"
    __table_args__ = (UniqueConstraint("evse_pk", "connector_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    evse_pk: Mapped[int] = mapped_column(ForeignKey("evses.id", ondelete="CASCADE"), index=True)
    connector_id: Mapped[str] = mapped_column(String(36))
    standard: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(8))
    power_type: Mapped[str] = mapped_column(String(16))
    max_voltage: Mapped[int] = mapped_column(Integer)
    max_amperage: Mapped[int] = mapped_column(Integer)
    max_electric_power: Mapped[int | None] = mapped_column(Integer, default=None)
    tariff_ids: Mapped[list] = mapped_column(JSONDoc, default=list)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime())

    evse: Mapped[EVSE] = relationship(back_populates="connectors")
