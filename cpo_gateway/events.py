"""The gateway's internal event model: what both OCPP versions are translated into.

:mod:`cpo_gateway.v16` and :mod:`cpo_gateway.v201` turn charger messages into these events;
:mod:`cpo_gateway.session_store` and :mod:`cpo_gateway.charger_store` store them. Values are exact (:class:`~decimal.Decimal`), times aware UTC and
taken from the charger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from kernel.meter_reading import ENERGY_REGISTER as ENERGY_REGISTER
from kernel.meter_reading import energy_wh


@dataclass(frozen=True, slots=True)
class Boot:
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A connector/EVSE status; ``ocpi_status`` is the OCPI EVSE status it maps to (None: leave as is)."""

    evse_id: int
    connector_id: int | None
    ocpp_status: str
    ocpi_status: str | None
    timestamp: datetime
    error_code: str | None = None


class Sample(NamedTuple):
    """One sampled value. ``value`` is exact; ``signed_data`` is the charger's signed payload, byte-exact.

    A named tuple rather than a frozen dataclass: every MeterValues message makes some, and a tuple is built
    three times faster."""

    timestamp: datetime
    value: Decimal
    measurand: str = ENERGY_REGISTER
    unit: str = "Wh"
    phase: str = ""
    location: str = "Outlet"
    context: str = "Sample.Periodic"
    signed_data: str | None = None

    @property
    def energy_wh(self) -> Decimal | None:
        """The value in Wh when this is an overall energy register reading, else None (a signature, a phase,
        another measurand): :func:`kernel.meter_reading.energy_wh`."""
        return energy_wh(self.measurand, self.phase, self.unit, self.value)


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A transaction began (1.6 StartTransaction; 2.0.1 TransactionEvent Started or the first event seen).

    ``transaction_id`` is None for 1.6, where the central system assigns it."""

    transaction_id: str | None
    evse_id: int | None
    connector_id: int | None
    id_tag: str | None
    timestamp: datetime
    meter_start_wh: Decimal | None = None
    reservation_id: int | None = None
    remote_start_id: int | None = None
    samples: tuple[Sample, ...] = ()
    meter_public_key: str | None = None  # 2.0.1 signedMeterValue.publicKey (verifies the signed values)
    seq_no: int | None = None
    """2.0.1 ``seqNo`` of the event (None for 1.6)."""
    earlier_seq_nos: tuple[int, ...] = ()
    """seqNos of the transaction's earlier events that took the group-commit path on this connection."""
    offline: bool = False
    """2.0.1 ``offline``: the event happened while the charger was offline."""


@dataclass(frozen=True, slots=True)
class MeterValues:
    transaction_id: str | None
    evse_id: int | None
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class SessionEnded:
    transaction_id: str
    timestamp: datetime
    meter_stop_wh: Decimal | None = None
    reason: str | None = None
    id_tag: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    samples: tuple[Sample, ...] = ()
    meter_public_key: str | None = None
    seq_no: int | None = None
    """2.0.1 ``seqNo`` of the event (None for 1.6)."""
    earlier_seq_nos: tuple[int, ...] = ()
    """seqNos of the transaction's earlier events that took the group-commit path on this connection."""
    offline: bool = False
    """2.0.1 ``offline``: the event happened while the charger was offline."""


@dataclass(slots=True)
class ChargerRef:
    """What the gateway knows about a connected charger (loaded once per connection)."""

    id: int
    identity: str
    cpo_id: int
    location_id: int | None
    ocpp_version: str
    registration_status: str
    evse_map: dict[int, int] = field(default_factory=dict)  # OCPP EVSE/connector number -> evses.id
