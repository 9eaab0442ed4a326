"""``OcpiComponent`` (name ``ocpi``): mounts the OCPI app under ``/ocpi`` and ``/api/partners`` on the hub's
HTTP app, registers the ``ocpi`` outbox channel, the jobs (outbox dispatcher, push scanner, tokens pull,
recovery of pending commands — also run once at start), the services ``hub.services.realtime_authorizer`` (the
gateway's seam, unless one is there already) and ``hub.services.outbox`` (its dispatcher, unless one is there
already), and appends its hooks (``async hook(db_session, obj)``, run by their producers inside their
transactions), in this order: ``hooks.session`` += :func:`~ocpi.realtime_authorization.session_reference_hook` (first, so
the pushed Session carries the eMSP's authorization reference), ``hooks.cdr`` += ``cdr_hook``,
``hooks.tariff`` += ``tariff_hook``, ``hooks.session`` += ``session_hook``, ``hooks.evse_status`` +=
``evse_status_hook`` (:mod:`ocpi.push.hooks`), ``hooks.hold`` += :func:`~ocpi.push.token_push.hold_hook`
(billing's holds queue the token updates to the external CPOs in their transaction). The job
``ocpi-token-push`` (every ``token_push_interval`` seconds) is the catch-up: it pushes the hosted eMSPs'
changed tokens, holds included, to the external CPOs (:class:`~ocpi.push.token_push.TokenWatch`).

Inside the OCPI package, the command runner and the tokens puller are reached through
:class:`~ocpi.platform.OcpiPlatform` (``platform.commands``, ``platform.tokens_pull``); the OCPI authorizer is
``component.authorizer``."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx

from kernel.components import Hub
from kernel.outbox import OutboxDispatcher, register_channel
from ocpi.app import create_ocpi_app
from ocpi.command_runner import CommandRunner
from ocpi.partners import api_router
from ocpi.platform import OcpiPlatform
from ocpi.push.hooks import cdr_hook, evse_status_hook, session_hook, tariff_hook
from ocpi.push.outbox_message import CHANNEL
from ocpi.push.scanner import PushScanner
from ocpi.push.sender import OcpiSender
from ocpi.push.token_push import TokenWatch, hold_hook
from ocpi.realtime_authorization import GatewayRealTimeAuthorizer, OcpiAuthorizer, session_reference_hook
from ocpi.tokens_pull import TokensPuller

log = logging.getLogger(__name__)


class OcpiComponent:
    name = "ocpi"

    def __init__(
        self,
        *,
        dispatch_interval: float = 1.0,
        scan_interval: float = 15.0,
        command_timeout: int = 30,
        authorize_timeout: float = 5.0,
        dispatcher: OutboxDispatcher | None = None,
        command_recovery_interval: float = 10.0,
        tokens_check_interval: float = 60.0,
        tokens_pull_interval: float = 3600.0,
        transport: httpx.AsyncBaseTransport | None = None,
        token_push_interval: float = 1.0,
    ) -> None:
        self.token_push_interval = token_push_interval
        self.token_watch: TokenWatch | None = None
        self._watching = False
        self.transport = transport  # how partners are reached (None: the network; tests: in-process apps)
        self.tokens_check_interval = tokens_check_interval
        self.tokens_pull_interval = tokens_pull_interval
        self.tokens: TokensPuller | None = None
        self.sender: OcpiSender | None = None
        self.command_recovery_interval = command_recovery_interval
        self.dispatch_interval = dispatch_interval
        self.scan_interval = scan_interval
        self.command_timeout = command_timeout
        self.authorize_timeout = authorize_timeout
        self.dispatcher = dispatcher
        self.platform: OcpiPlatform | None = None
        self.commands: CommandRunner | None = None
        self.authorizer: OcpiAuthorizer | None = None
        self._scanning = False
        self.scanner: PushScanner | None = None  # incremental: its watermark lives as long as the component

    def install(self, hub: Hub) -> None:
        self.commands = CommandRunner(hub.db, hub.services, timeout=self.command_timeout)
        self.platform = OcpiPlatform(
            db=hub.db,
            public_url=hub.settings.public_url,
            commands=self.commands,
            authorize_timeout=self.authorize_timeout,
            command_timeout=self.command_timeout,
            transport=self.transport,
        )
        self.authorizer = OcpiAuthorizer(hub.db, timeout=self.authorize_timeout, transport=self.transport)
        if hub.services.realtime_authorizer is None:
            hub.services.realtime_authorizer = GatewayRealTimeAuthorizer(hub.db, self.authorizer)
        self.tokens = TokensPuller(
            hub.db,
            interval=timedelta(seconds=self.tokens_pull_interval),
            timeout=self.platform.client_timeout,
            transport=self.transport,
        )
        self.platform.tokens_pull = self.tokens
        # The order matters: the authorization reference is set on the session before it is pushed.
        hub.hooks.session.append(session_reference_hook)
        hub.hooks.cdr.append(cdr_hook)
        hub.hooks.tariff.append(tariff_hook)
        hub.hooks.session.append(session_hook)
        hub.hooks.evse_status.append(evse_status_hook)
        hub.hooks.hold.append(hold_hook)
        self.token_watch = TokenWatch(hub.db)
        self.sender = OcpiSender(hub.db, timeout=self.platform.client_timeout, transport=self.transport)
        register_channel(CHANNEL, self.sender)
        if self.dispatcher is None:
            self.dispatcher = OutboxDispatcher(hub.db)
        if hub.services.outbox is None:
            hub.services.outbox = self.dispatcher
        if hub.app is not None:
            hub.app.mount("/ocpi", create_ocpi_app(self.platform))
            hub.app.include_router(api_router(hub.db))
        if hub.scheduler is not None:
            hub.every(self.dispatch_interval, self.dispatcher.scheduled, "outbox-dispatch")
            hub.every(self.command_recovery_interval, self.recover_commands, "ocpi-command-recovery")
            hub.every(self.tokens_check_interval, self.pull_tokens_once, "ocpi-tokens-pull")
            hub.every(self.scan_interval, self.scan_once, "ocpi-push-scan")
            hub.every(self.token_push_interval, self.push_tokens_once, "ocpi-token-push")

    async def scan_once(self) -> int:
        if self.platform is None or self._scanning:
            return 0
        self._scanning = True
        try:
            if self.scanner is None:
                self.scanner = PushScanner(self.platform.db)
            return await self.scanner.scan()
        except Exception:
            log.exception("OCPI push scan failed")
            return 0
        finally:
            self._scanning = False

    async def push_tokens_once(self) -> int:
        """The hosted eMSPs' tokens changed since the last run (holds included), queued to the external CPOs."""
        if self.token_watch is None or self._watching:
            return 0
        self._watching = True
        try:
            return await self.token_watch.run()
        except Exception:
            log.exception("OCPI token push failed")
            return 0
        finally:
            self._watching = False

    async def pull_tokens_once(self) -> int:
        """The eMSPs' token lists: pull from every partner due (never pulled, or longer than the interval)."""
        if self.tokens is None:
            return 0
        try:
            return await self.tokens.run_due()
        except Exception:
            log.exception("OCPI tokens pull failed")
            return 0

    async def recover_commands(self) -> int:
        """Results of commands left pending by a process that stopped (TIMEOUT, or the recorded answer)."""
        if self.commands is None:
            return 0
        try:
            return await self.commands.recover()
        except Exception:
            log.exception("OCPI command recovery failed")
            return 0

    async def start(self, hub: Hub) -> None:
        await self.recover_commands()

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.aclose()  # before the sender's HTTP clients close
        if self.sender is not None:
            await self.sender.stop()
        if self.commands is not None:
            await self.commands.stop()
        if self.tokens is not None:
            await self.tokens.stop()
