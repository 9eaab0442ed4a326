"""The Commands module's requests, CommandResponse and CommandResult."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from kernel.domain.tokens import OcpiToken
from ocpi.schemas.common import DisplayText, OcpiModel

CommandType = Literal[
    "CANCEL_RESERVATION", "RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR"
]
CommandResponseType = Literal["NOT_SUPPORTED", "REJECTED", "ACCEPTED", "UNKNOWN_SESSION"]
CommandResultType = Literal[
    "ACCEPTED",
    "CANCELED_RESERVATION",
    "EVSE_OCCUPIED",
    "EVSE_INOPERATIVE",
    "FAILED",
    "NOT_SUPPORTED",
    "REJECTED",
    "TIMEOUT",
    "UNKNOWN_RESERVATION",
]

Id36 = Annotated[str, Field(min_length=1, max_length=36)]
Url = Annotated[str, Field(min_length=1, max_length=255)]  # OCPI 2.2.1 16.1.6 URL: string(255)


class StartSession(OcpiModel):
    response_url: Url
    token: OcpiToken
    location_id: Id36
    evse_uid: Id36 | None = None
    connector_id: Id36 | None = None
    authorization_reference: Id36 | None = None


class StopSession(OcpiModel):
    response_url: Url
    session_id: Id36


class ReserveNow(OcpiModel):
    response_url: Url
    token: OcpiToken
    expiry_date: datetime
    reservation_id: Id36
    location_id: Id36
    evse_uid: Id36 | None = None
    authorization_reference: Id36 | None = None


class CancelReservation(OcpiModel):
    response_url: Url
    reservation_id: Id36


class UnlockConnector(OcpiModel):
    response_url: Url
    location_id: Id36
    evse_uid: Id36
    connector_id: Id36


class CommandResponse(OcpiModel):
    result: CommandResponseType
    timeout: int
    message: list[DisplayText] | None = None


class CommandResult(OcpiModel):
    result: CommandResultType
    message: list[DisplayText] | None = None
