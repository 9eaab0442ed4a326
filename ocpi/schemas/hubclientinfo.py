"""ClientInfo (HubClientInfo module)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from ocpi.schemas.common import CiString2, CiString3, Timestamped

ConnectionStatus = Literal["CONNECTED", "OFFLINE", "PLANNED", "SUSPENDED"]


class ClientInfo(Timestamped):
    """Stored as given and served back by GET: fields OCPI's ClientInfo does not have are dropped on the way
    in, so what the hub gives back is exactly OCPI (issue 13)."""

    model_config = ConfigDict(extra="ignore")

    party_id: CiString3
    country_code: CiString2
    role: Literal["CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"]
    status: ConnectionStatus
