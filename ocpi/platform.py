"""The state the OCPI app works with: database, public base URL, timeouts, and the services of the hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request

from evhub.db.engine import Database

VERSION = "2.2.1"


@dataclass
class OcpiPlatform:
    db: Database
    public_url: str
    services: dict[str, Any] = field(default_factory=dict)
    authorize_timeout: float = 5.0
    command_timeout: int = 30
    client_timeout: float = 10.0
    max_limit: int = 100
    transport: httpx.AsyncBaseTransport | None = None  # how partners are reached; None: the network

    @property
    def base_url(self) -> str:
        """``https://hub.example/ocpi``"""
        return self.public_url.rstrip("/") + "/ocpi"

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/versions"

    @property
    def version_url(self) -> str:
        return f"{self.base_url}/{VERSION}"

    def module_url(self, identifier: str) -> str:
        if identifier == "credentials":
            return f"{self.base_url}/{VERSION}/credentials"
        return f"{self.base_url}/cpo/{VERSION}/{identifier}"


def get_platform(request: Request) -> OcpiPlatform:
    return request.app.state.platform
