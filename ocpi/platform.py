"""The state the OCPI app works with: database, public base URL, timeouts, the command runner and the tokens
puller (set by :class:`~ocpi.component.OcpiComponent`; None in an app without them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx
from fastapi import Request

from kernel.db.engine import Database
from ocpi.v211 import VERSION_211

if TYPE_CHECKING:
    from ocpi.command_runner import CommandRunner

VERSION = "2.2.1"
VERSIONS = (VERSION, VERSION_211)
"""The OCPI versions the hub offers, highest first (the order of the negotiation: the highest both offer)."""


class TokensPull(Protocol):
    """What the OCPI app asks of the tokens puller (:class:`ocpi.tokens_pull.TokensPuller`): pull one
    partner's tokens soon, e.g. right after it registered."""

    def kick(self, partner_id: int) -> None: ...


@dataclass
class OcpiPlatform:
    db: Database
    public_url: str
    commands: CommandRunner | None = None
    tokens_pull: TokensPull | None = None
    authorize_timeout: float = 5.0
    command_timeout: int = 30
    client_timeout: float = 10.0
    max_limit: int = 100
    transport: httpx.AsyncBaseTransport | None = None  # how partners are reached; None: the network

    def command_runner(self) -> CommandRunner:
        """The runner of eMSP commands; only an app mounted by :class:`~ocpi.component.OcpiComponent` has one."""
        if self.commands is None:
            raise RuntimeError("this OCPI app runs no command runner (mount it through OcpiComponent)")
        return self.commands

    @property
    def base_url(self) -> str:
        """``https://hub.example/ocpi``"""
        return self.public_url.rstrip("/") + "/ocpi"

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/versions"

    @property
    def version_url(self) -> str:
        return self.details_url(VERSION)

    def details_url(self, version: str) -> str:
        """``https://hub.example/ocpi/2.1.1``: the version details of ``version``."""
        return f"{self.base_url}/{version}"

    def module_url(self, identifier: str, version: str = VERSION) -> str:
        if identifier == "credentials":
            return f"{self.base_url}/{version}/credentials"
        return f"{self.base_url}/cpo/{version}/{identifier}"


def get_platform(request: Request) -> OcpiPlatform:
    return request.app.state.platform
