"""The wiring of the hub: which components a process runs, in which order, and the seams that results in.

:func:`wire` is the one place components are installed, used by ``evhub serve`` (:class:`evhub.app.RunningHub`,
also in each OCPP worker process) and by every CLI command that creates CDRs or tariff versions
(:func:`wired_hooks`), so a CDR or a tariff version gets its deliveries queued in its own transaction wherever
it is made. Installing does no I/O: wiring for a CLI command costs nothing but imports.

The money path, in install order, and what each component puts into the seams (:mod:`kernel.seams`)::

    gateway   services.gateway                              runs hooks.session, hooks.evse_status
    pricing   services.pricing                              runs hooks.cdr (and hooks.tariff for grid load)
    ocpi      services.realtime_authorizer, services.outbox
              hooks.session     += session_reference_hook   (first: the pushed Session carries the reference)
              hooks.cdr         += cdr_hook                 (OCPI push of the CDR)
              hooks.tariff      += tariff_hook              (OCPI push of the tariff version)
              hooks.session     += session_hook             (OCPI push of the Session)
              hooks.evse_status += evse_status_hook         (OCPI push of the EVSE status)
              hooks.hold        += hold_hook                (billing's holds: the token PUTs to external CPOs)
    settlement  (no seam: a monthly job and its API)
    billing   services.billing
              hooks.cdr         += cdr_hook                 (per-session invoice, credit CDR's credit note)
    portal    hooks.cdr         += receipt_hook             (the receipt e-mail, with the session's invoice)

so ``hooks.session == [session_reference_hook, session_hook]``, ``hooks.cdr == [cdr_hook (OCPI), cdr_hook
(billing), receipt_hook]``,
``hooks.tariff == [tariff_hook]``, ``hooks.evse_status == [evse_status_hook]``, ``hooks.hold == [hold_hook]``
(billing runs it from the session: a :class:`~kernel.components.Hub`'s database sessions carry its hooks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from billing.component import BillingComponent
from cpo_gateway.component import GatewayComponent
from kernel.components import Component, Hub
from kernel.seams import Hooks
from ocpi.component import OcpiComponent
from portal.component import PortalComponent
from settlement.component import SettlementComponent
from tariffs.component import PricingComponent

if TYPE_CHECKING:
    from kernel.db.engine import Database
    from kernel.settings import Settings

# The money path, in order: charger -> session -> priced CDR -> partner -> settlement -> invoice -> fleet portal.
COMPONENTS: tuple[type[Component], ...] = (
    GatewayComponent,
    PricingComponent,
    OcpiComponent,
    SettlementComponent,
    BillingComponent,
    PortalComponent,
)


def load_components(classes: Sequence[type[Component]] = COMPONENTS) -> list[Component]:
    """One instance of each component class, in order (each with its default settings)."""
    return [cls() for cls in classes]


def wire(hub: Hub, components: Sequence[Component]) -> None:
    """Install ``components`` on ``hub`` in order: their routers (when ``hub.app`` is set), jobs (when
    ``hub.scheduler`` is set), hooks and services. Nothing is started."""
    hub.component_names = [c.name for c in components]
    for component in components:
        component.install(hub)


def wired_hooks(settings: Settings, db: Database, node_name: str = "cli") -> Hooks:
    """The hooks ``evhub serve`` runs, for a command that creates CDRs or tariff versions outside of it
    (no HTTP app, no scheduler, nothing started)."""
    hub = Hub(settings=settings, db=db, node_name=node_name)
    wire(hub, load_components())
    return hub.hooks
