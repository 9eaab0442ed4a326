"""The gateway as a hub component (what ``evhub serve`` runs)."""

from __future__ import annotations

from cpo_gateway.api import router
from cpo_gateway.server import Gateway
from kernel.components import Hub


class GatewayComponent:
    """OCPP listener on ``settings.ocpp_host:ocpp_port`` and ``/api/chargers``; ``hub.services.gateway``. Runs
    ``hub.hooks.session`` and ``hub.hooks.evse_status``."""

    name = "gateway"

    def __init__(self) -> None:
        self.gateway: Gateway | None = None

    def install(self, hub: Hub) -> None:
        self.gateway = Gateway(hub.settings, hub.db, hub.node_name, hooks=hub.hooks, services=hub.services)
        hub.services.gateway = self.gateway
        if hub.app is not None:
            hub.app.include_router(router, prefix="/api/chargers")

    async def start(self, hub: Hub) -> None:
        assert self.gateway is not None, "install() first"
        port = await self.gateway.start()
        hub.endpoints["ocpp"] = (
            f"{'wss' if self.gateway.tls else 'ws'}://{hub.settings.ocpp_host}:{port}/ocpp/"
        )

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
