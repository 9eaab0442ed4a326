"""The domain model the whole hub shares. Importing this package registers every table on ``Base.metadata``.

The money path in tables: ``charge_points`` -> ``sessions`` (+ ``meter_values``) -> ``cdrs`` (priced with
``tariffs``) -> ``outbox`` (to partners) and ``settlement_runs`` / ``settlement_statements``.
Later packages add their own tables by importing :class:`evhub.db.Base` in a module listed here.
"""

from evhub.models.apikeys import ApiKey
from evhub.models.cdrs import Cdr
from evhub.models.charger_meter import ChargerMeterValue
from evhub.models.chargers import ChargePoint, ChargePointEvse, OcppVersion, RegistrationStatus
from evhub.models.fleets import Fleet, FleetManager
from evhub.models.gateway import ChargerEvent
from evhub.models.grid import GridLoadSample, GridTariffRule
from evhub.models.immutability import ImmutableRecordError
from evhub.models.locations import EVSE, Connector, Location
from evhub.models.outbox import OutboxMessage, OutboxStatus
from evhub.models.parties import Party, PartyRole
from evhub.models.portal import (
    FleetDriver,
    FleetVehicle,
    PortalKey,
    PortalSession,
    Receipt,
    ReceiptStatus,
)
from evhub.models.sessions import ChargingSession, MeterValue, PricingState, SessionStatus
from evhub.models.settlement import Agreement, SettlementRun, SettlementStatement
from evhub.models.tariffs import TariffVersion
from evhub.models.tokens import Token
from ocpi.models import (  # noqa: F401  (OCPI platform tables)
    OcpiAuthorization,
    OcpiPartner,
    OcpiPartnerRole,
    OcpiPendingCommand,
    OcpiPushState,
)

__all__ = [
    "EVSE",
    "Agreement",
    "ApiKey",
    "Cdr",
    "ChargePoint",
    "ChargePointEvse",
    "ChargerEvent",
    "ChargerMeterValue",
    "ChargingSession",
    "Connector",
    "Fleet",
    "FleetDriver",
    "FleetManager",
    "FleetVehicle",
    "GridLoadSample",
    "GridTariffRule",
    "ImmutableRecordError",
    "Location",
    "MeterValue",
    "OcppVersion",
    "OutboxMessage",
    "OutboxStatus",
    "Party",
    "PartyRole",
    "PortalKey",
    "PortalSession",
    "PricingState",
    "Receipt",
    "ReceiptStatus",
    "RegistrationStatus",
    "SessionStatus",
    "SettlementRun",
    "SettlementStatement",
    "TariffVersion",
    "Token",
]
