"""Every table of the hub, the stages' included. Importing this package registers each on ``Base.metadata``.

The money path in tables: ``charge_points`` -> ``sessions`` (+ ``meter_values``) -> ``cdrs`` (priced with
``tariffs``) -> ``outbox`` (to partners) and ``settlement_runs`` / ``settlement_statements``. The schema is
the kernel's so that no stage imports another for a table: the OCPI platform's tables are in
:mod:`kernel.models.roaming`, the portal's in :mod:`kernel.models.portal`. A new table goes in a module of
this package, derived from :class:`kernel.db.base.Base` and imported here, with its migration in
``kernel/migrations``.
"""

from kernel.models.apikeys import ApiKey
from kernel.models.auth import LoginThrottle, PasswordCheck
from kernel.models.billing import (
    BillingAccount,
    BillingCharge,
    BillingDocument,
    BillingDocumentCdr,
    BillingDunningStep,
    BillingHeldOutsideVat,
    BillingHold,
    BillingIssuer,
    BillingNumberSeries,
    BillingPayment,
    BillingWebhookEvent,
)
from kernel.models.cdrs import Cdr
from kernel.models.charger_meter import ChargerMeterValue
from kernel.models.chargers import ChargePoint, ChargePointEvse, OcppVersion, RegistrationStatus
from kernel.models.fleets import Fleet, FleetManager
from kernel.models.gateway import ChargerEvent
from kernel.models.grid import GridLoadSample, GridTariffRule
from kernel.models.immutability import ImmutableRecordError
from kernel.models.locations import EVSE, Connector, Location
from kernel.models.outbox import OutboxMessage, OutboxPriority, OutboxStatus
from kernel.models.parties import Party, PartyRole
from kernel.models.portal import (
    FleetDriver,
    FleetVehicle,
    PortalKey,
    PortalSession,
    Receipt,
    ReceiptStatus,
)
from kernel.models.reservations import Reservation, ReservationStatus
from kernel.models.roaming import (  # noqa: F401  (OCPI platform tables)
    OcpiAuthorization,
    OcpiPartner,
    OcpiPartnerRole,
    OcpiPendingCommand,
    OcpiPushState,
)
from kernel.models.sessions import ChargingSession, MeterValue, PricingState, SessionStatus
from kernel.models.settlement import (
    Agreement,
    SettlementRejection,
    SettlementRun,
    SettlementStatement,
)
from kernel.models.tariffs import TariffPolicy, TariffVersion
from kernel.models.tokens import Token

__all__ = [
    "EVSE",
    "Agreement",
    "ApiKey",
    "BillingAccount",
    "BillingCharge",
    "BillingDocument",
    "BillingDocumentCdr",
    "BillingDunningStep",
    "BillingHeldOutsideVat",
    "BillingHold",
    "BillingIssuer",
    "BillingNumberSeries",
    "BillingPayment",
    "BillingWebhookEvent",
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
    "LoginThrottle",
    "MeterValue",
    "OcppVersion",
    "OutboxMessage",
    "OutboxPriority",
    "OutboxStatus",
    "Party",
    "PartyRole",
    "PasswordCheck",
    "PortalKey",
    "PortalSession",
    "PricingState",
    "Receipt",
    "ReceiptStatus",
    "RegistrationStatus",
    "Reservation",
    "ReservationStatus",
    "SessionStatus",
    "SettlementRejection",
    "SettlementRun",
    "SettlementStatement",
    "TariffPolicy",
    "TariffVersion",
    "Token",
]
