"""How the packages plug into one process.

Each package that runs something inside ``evhub serve`` (the OCPP listener, OCPI delivery, pricing, the
portal...) provides a :class:`Component`: it may contribute an HTTP router and scheduled jobs, and has
``start``/``stop`` hooks. :mod:`evhub.app` assembles them in a fixed order (see ``COMPONENTS`` there) and
stops them in reverse order on SIGTERM.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from fastapi import FastAPI

    from evhub.db.engine import Database
    from evhub.settings import Settings


@dataclass
class Hub:
    """What every component receives: settings, the database, the scheduler, the HTTP app, and a place for
    components to find each other (``services``, e.g. ``hub.services["gateway"]``)."""

    settings: Settings
    db: Database
    node_name: str
    scheduler: AsyncIOScheduler | None = None
    app: FastAPI | None = None
    services: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)

    def every(self, seconds: float, job: Callable[[], Awaitable[Any]], job_id: str) -> None:
        """Run ``job`` every ``seconds`` on the scheduler: never two at once, missed runs coalesced."""
        if self.scheduler is not None:
            self.scheduler.add_job(
                job,
                "interval",
                seconds=seconds,
                id=job_id,
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )


@runtime_checkable
class Component(Protocol):
    """A part of the running hub."""

    name: str

    def install(self, hub: Hub) -> None:
        """Register routers on ``hub.app``, jobs on ``hub.scheduler`` and services in ``hub.services``.
        Called before anything starts; must not do I/O."""

    async def start(self, hub: Hub) -> None:
        """Open listeners, connections and background tasks."""

    async def stop(self) -> None:
        """Stop gracefully: finish or persist in-flight work, close listeners."""
