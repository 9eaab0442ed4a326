"""Commands from eMSPs turned into charger calls through the gateway, and their results sent back.

The Receiver route (:mod:`ocpi.modules.commands`) answers a CommandResponse at once; :class:`CommandRunner`
then awaits the gateway (``hub.services.gateway``, see :class:`GatewayCommands`) for at most
``command_timeout`` seconds and POSTs the CommandResult to the eMSP's ``response_url`` through the durable
outbox (``TIMEOUT`` when the charger did not answer in time, ``FAILED`` when the gateway raised).

Every accepted command is first a row of ``ocpi_pending_commands`` written in the request's transaction (its
``response_url``, ``timeout``, deadline, partner, command and reference); the gateway is only called once that
row is committed. The row leaves ``pending`` exactly once, in the same transaction as the outbox row of its
result — by the runner when the charger answered or timed out, or by :meth:`CommandRunner.recover` (run at
start and periodically) for rows past their deadline whose process died: it sends the recorded answer if there
is one, else ``TIMEOUT`` (``REJECTED`` for charging profiles).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway import ChargerOffline, InvalidCall
from kernel.db.engine import Database
from kernel.models import OutboxPriority
from kernel.models.roaming import CommandState, OcpiPartner, OcpiPendingCommand
from kernel.outbox import enqueue
from kernel.seams import Services
from kernel.timeutil import utcnow
from ocpi import status
from ocpi.envelope import OcpiError
from ocpi.gateway_adapter import OcppCommandAdapter
from ocpi.response_urls import check_response_url, on_registered_host
from ocpi.v211 import VERSION_211
from ocpi.v211.objects import command_result_to_211

log = logging.getLogger(__name__)

RESULT_TYPES = {
    "ACCEPTED",
    "CANCELED_RESERVATION",
    "EVSE_OCCUPIED",
    "EVSE_INOPERATIVE",
    "FAILED",
    "NOT_SUPPORTED",
    "REJECTED",
    "TIMEOUT",
    "UNKNOWN_RESERVATION",
}


@runtime_checkable
class GatewayCommands(Protocol):
    """What the OCPI commands need from the gateway. Each call returns when the charger answered, with an
    OCPI CommandResultType (``ACCEPTED``, ``REJECTED``, ``EVSE_OCCUPIED``, ...). ``cpo_id`` is the Party
    pk of the CPO; ``id_tag`` the token uid to start/reserve with."""

    async def start_session(
        self,
        *,
        cpo_id: int,
        location_id: str,
        evse_uid: str | None,
        connector_id: str | None,
        id_tag: str,
        token: dict[str, Any],
        authorization_reference: str | None,
    ) -> str: ...

    async def stop_session(self, *, cpo_id: int, session_uid: str) -> str: ...

    async def unlock_connector(
        self, *, cpo_id: int, location_id: str, evse_uid: str, connector_id: str
    ) -> str: ...

    async def reserve_now(
        self,
        *,
        cpo_id: int,
        location_id: str,
        evse_uid: str | None,
        reservation_id: str,
        expiry_date: datetime,
        id_tag: str,
        token: dict[str, Any],
        authorization_reference: str | None,
    ) -> str: ...

    async def cancel_reservation(self, *, cpo_id: int, reservation_id: str) -> str: ...


class GatewayChargingProfiles(Protocol):
    """Optional: smart charging of a running session (ChargingProfiles module). Results are OCPI
    ChargingProfileResultType (``ACCEPTED``, ``REJECTED``, ``UNKNOWN``)."""

    async def set_charging_profile(
        self, *, cpo_id: int, session_uid: str, profile: dict[str, Any]
    ) -> str: ...

    async def clear_charging_profile(self, *, cpo_id: int, session_uid: str) -> str: ...

    async def get_active_charging_profile(
        self, *, cpo_id: int, session_uid: str, duration: int
    ) -> dict[str, Any]:
        """``{"result": "ACCEPTED", "profile": ActiveChargingProfile}`` or ``{"result": "REJECTED"}``."""
        ...


METHODS = {
    "START_SESSION": "start_session",
    "STOP_SESSION": "stop_session",
    "UNLOCK_CONNECTOR": "unlock_connector",
    "RESERVE_NOW": "reserve_now",
    "CANCEL_RESERVATION": "cancel_reservation",
}


def result_payload(partner: OcpiPartner, row: OcpiPendingCommand, body: dict[str, Any]) -> dict[str, Any]:
    """The outbox payload of a command's result, in the OCPI version the partner sent the command in (its
    negotiated version; the ``response_url`` belongs to that version): 2.2.1 a CommandResult with the request's
    routing headers, 2.1.1 a CommandResponse (:func:`ocpi.v211.objects.command_result_to_211`) and no headers.
    Charging profile results exist in 2.2.1 only."""
    payload: dict[str, Any] = {
        "method": "POST",
        "url": row.response_url,
        "module": "commands",
        "body": body,
        "headers": row.routing or {},
    }
    if partner.version == VERSION_211 and row.module == "commands":
        payload.update(body=command_result_to_211(body), headers={}, version=VERSION_211)
    return payload


class CommandRunner:
    """Runs accepted commands in the background and queues their results for the eMSP."""

    def __init__(
        self, db: Database, services: Services, timeout: int = 30, *, recovery_grace: float = 5.0
    ) -> None:
        """``services`` is the hub's: its gateway is read at each command (the gateway may come later)."""
        self.db = db
        self.services = services
        self.timeout = timeout
        self.recovery_grace = recovery_grace
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def gateway(self) -> Any:
        """The gateway as :class:`GatewayCommands`: used directly when it implements the protocol, wrapped
        in :class:`~ocpi.gateway_adapter.OcppCommandAdapter` when it offers the generic ``send``."""
        gw: Any = self.services.gateway
        if gw is None or isinstance(gw, GatewayCommands):
            return gw
        if callable(getattr(gw, "send", None)):
            return OcppCommandAdapter(gw, self.db)
        return None

    def supports(self, command: str) -> bool:
        gw = self.gateway
        return gw is not None and callable(getattr(gw, METHODS[command], None))

    async def submit(
        self,
        db_session: AsyncSession,
        command: str,
        kwargs: dict[str, Any],
        *,
        response_url: str,
        partner_id: int,
        routing: dict[str, str],
        reference: str | None = None,
    ) -> None:
        method = getattr(self.gateway, METHODS[command])
        await self.submit_call(
            db_session,
            lambda: method(**kwargs),
            response_url=response_url,
            partner_id=partner_id,
            routing=routing,
            module="commands",
            command=command,
            reference=reference,
            allowed=RESULT_TYPES,
        )

    async def submit_call(
        self,
        db_session: AsyncSession,
        call: Callable[[], Awaitable[Any]],
        *,
        response_url: str,
        partner_id: int,
        routing: dict[str, str],
        module: str,
        allowed: set[str],
        command: str | None = None,
        reference: str | None = None,
        failed: str = "FAILED",
    ) -> int:
        """Record the pending command in ``db_session`` (the request's transaction), then run ``call`` (at most
        ``timeout`` seconds) once that is committed and POST ``{"result": ...}`` to ``response_url``.
        ``call`` may answer a result string or a dict with ``result`` (extra fields are sent along).
        Returns the pending command's id. A ``response_url`` outside the partner's registered hosts is refused
        (:func:`ocpi.response_urls.check_response_url`, 2001) and nothing is recorded."""
        partner = await db_session.get(OcpiPartner, partner_id)
        if partner is None:
            raise OcpiError(status.INVALID_PARAMETERS, "unknown partner")
        check_response_url(partner, response_url)
        row = OcpiPendingCommand(
            partner_id=partner_id,
            module=module,
            command=command or module,
            reference=(reference or "")[:255] or None,
            response_url=response_url,
            routing=dict(routing),
            timeout=self.timeout,
            deadline=utcnow() + timedelta(seconds=self.timeout),
            state=CommandState.PENDING,
        )
        db_session.add(row)
        await db_session.flush()
        task = asyncio.create_task(self._run(row.id, call, module, allowed, failed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return row.id

    async def _committed(self, command_id: int) -> bool:
        """Wait until the request that accepted the command committed its row (False: it rolled back)."""
        for _ in range(100):
            async with self.db.session() as db_session:
                if await db_session.get(OcpiPendingCommand, command_id) is not None:
                    return True
            await asyncio.sleep(0.05)
        return False

    async def _run(
        self,
        command_id: int,
        call: Callable[[], Awaitable[Any]],
        module: str,
        allowed: set[str],
        failed: str,
    ) -> None:
        if not await self._committed(command_id):
            log.warning("pending command %s was never committed; not sent to the charger", command_id)
            return
        message = None
        extra: dict[str, Any] = {}
        try:
            answer = await asyncio.wait_for(call(), timeout=self.timeout)
            if isinstance(answer, dict):
                extra = {k: v for k, v in answer.items() if k != "result"}
                answer = answer.get("result")
            result = str(answer).upper()
            if result not in allowed:
                message = f"charger answered {result}"
                result = failed
        except TimeoutError:
            result = "TIMEOUT" if "TIMEOUT" in allowed else failed
            message = "no answer from the charger in time"
        except (
            ChargerOffline
        ) as exc:  # not a fault of the hub: the partner learns why, the log needs no trace
            log.info("command for %s: charger %s is not connected", module, exc)
            result, message = failed, f"charger {exc} is not connected (offline)"
        except InvalidCall as exc:  # the command's values are not valid OCPP: never sent
            log.warning("command for %s not sent: %s", module, exc)
            result, message = failed, str(exc)[:200]
        except Exception as exc:
            log.exception("gateway call for %s failed", module)
            result, message = failed, str(exc)[:200]
        body: dict[str, Any] = {"result": result, **extra}
        if message and module == "commands":
            body["message"] = [{"language": "en", "text": message}]
        await self.finish(command_id, body)

    async def finish(self, command_id: int, body: dict[str, Any]) -> bool:
        """Take the command out of ``pending`` and queue ``body`` for its ``response_url``, in one transaction.
        False when it was already finished (by the runner or the recovery job)."""
        async with self.db.session() as db_session:
            return await self._finish(db_session, command_id, body)

    async def _finish(self, db_session: AsyncSession, command_id: int, body: dict[str, Any]) -> bool:
        taken = await db_session.execute(
            update(OcpiPendingCommand)
            .where(OcpiPendingCommand.id == command_id, OcpiPendingCommand.state == CommandState.PENDING)
            .values(state=CommandState.SENT, result=body, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        assert isinstance(taken, CursorResult), "an UPDATE returns a cursor result"
        if (taken.rowcount or 0) != 1:
            return False
        row = await db_session.get(OcpiPendingCommand, command_id, populate_existing=True)
        assert row is not None
        partner = await db_session.get(OcpiPartner, row.partner_id)
        if partner is None or not on_registered_host(partner, row.response_url):
            log.warning(
                "result of %s %s not sent: response_url %r is not on partner %s's registered hosts",
                row.module,
                row.id,
                row.response_url[:200],
                row.partner_id,
            )
            return True
        await enqueue(
            db_session,
            "ocpi",
            str(row.partner_id),
            f"ocpi:{row.partner_id}:command:{row.id}",
            result_payload(partner, row, body),
            dedupe_key=f"ocpi:{row.partner_id}:command-result:{row.id}",
            priority=OutboxPriority.URGENT,  # the eMSP's app waits for it: before any bulk push to the partner
        )
        return True

    async def record_answer(self, command_id: int, body: dict[str, Any]) -> None:
        """Remember the charger's answer of a pending command without sending it yet (the recovery job sends
        it instead of ``TIMEOUT`` if this process dies before :meth:`finish`)."""
        async with self.db.session() as db_session:
            await db_session.execute(
                update(OcpiPendingCommand)
                .where(OcpiPendingCommand.id == command_id, OcpiPendingCommand.state == CommandState.PENDING)
                .values(result=body)
                .execution_options(synchronize_session=False)
            )

    async def recover(self) -> int:
        """Send the result of every pending command whose deadline (plus a grace for a live process still
        finishing it) has passed: its recorded answer, else ``TIMEOUT`` (``REJECTED`` for charging profiles).
        Returns how many were queued."""
        limit = utcnow() - timedelta(seconds=self.recovery_grace)
        async with self.db.session() as db_session:
            rows = (
                await db_session.scalars(
                    select(OcpiPendingCommand)
                    .where(
                        OcpiPendingCommand.state == CommandState.PENDING,
                        OcpiPendingCommand.deadline <= limit,
                    )
                    .order_by(OcpiPendingCommand.id)
                    .limit(500)
                )
            ).all()
            todo = [(r.id, r.module, r.result) for r in rows]
        sent = 0
        for command_id, module, recorded in todo:
            if recorded:
                body = dict(recorded)
            elif module == "commands":
                body = {
                    "result": "TIMEOUT",
                    "message": [{"language": "en", "text": "no answer from the charger before the deadline"}],
                }
            else:
                body = {"result": "REJECTED"}
            sent += await self.finish(command_id, body)
        return sent

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
