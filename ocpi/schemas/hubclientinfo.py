"""ClientInfo (HubClientInfo module)."""

from __future__ import annotations

from typing import Literal

from ocpi.schemas.common import CiString2, CiString3, Timestamped

ConnectionStatus = Literal["CONNECTED", "OFFLINE", "PLANNED", "SUSPENDED"]


class ClientInfo(Timestamped):
    party_id: CiString3
    country_code: CiString2
    role: Literal["CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"]
    status: ConnectionStatus
