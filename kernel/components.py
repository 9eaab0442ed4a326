"""How the stages plug into one process.

Each stage that runs something inside ``evhub serve`` (the OCPP listener, OCPI delivery, pricing, the
portal...) provides a :class:`Component`: it may contribute an HTTP router and scheduled jobs, and has
``start``/``stop`` hooks. :func:`evhub.wiring.wire` installs them in a fixed order (see ``COMPONENTS`` there);
:mod:`evhub.app` starts them in that order and stops them in reverse order on SIGTERM. Components hand work to
each other only through the typed seams of :mod:`kernel.seams` (``hub.hooks``, ``hub.services``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kernel.seams import Hooks, Services, carry_hooks

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from fastapi import FastAPI

    from kernel.db.engine import Database
    from kernel.settings import Settings


@dataclass
class Hub:
    """What every component receives: settings, the database, the scheduler, the HTTP app, and the typed seams
    through which components hand work to each other (``hooks``, ``services``: see :mod:`kernel.seams`)."""

    settings: Settings
    db: Database
    node_name: str
    scheduler: AsyncIOScheduler | None = None
    app: FastAPI | None = None
    hooks: Hooks = field(default_factory=Hooks)
    services: Services = field(default_factory=Services)
    endpoints: dict[str, str] = field(default_factory=dict)
    component_names: list[str] = field(default_factory=list)  # what this process installed (``/health``)

    def __post_init__(self) -> None:
        carry_hooks(self.db.sessionmaker, self.hooks)  # the producers that only have a session find them

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
        """Register routers on ``hub.app``, jobs on ``hub.scheduler``, hooks in ``hub.hooks`` and services in
        ``hub.services``. Called before anything starts (also by CLI commands that only need the hooks);
        must not do I/O."""

    async def start(self, hub: Hub) -> None:
        """Open listeners, connections and background tasks."""

    async def stop(self) -> None:
        """Stop gracefully: finish or persist in-flight work, close listeners."""
