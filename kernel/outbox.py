"""Durable outbox delivery: whatever must reach someone later (OCPI pushes, emails) is a row in ``outbox``.

* :func:`enqueue` adds a message inside the caller's business transaction (idempotent by ``dedupe_key``), with
  its ``priority`` (:class:`~kernel.models.outbox.OutboxPriority`: what a person or a real-time exchange waits
  for first, the default; bulk state pushes last);
* :func:`unsent_tail`, :func:`coalesce` and :func:`supersede` (``unsent_only``) let a channel merge a new message
  into one of the same object that was never tried, or close such messages a newer one replaces (OCPI PATCHes
  and PUTs: ``ocpi.push.outbox_message``); a row any attempt has leased is never touched;
* :func:`register_channel` plugs in a sender per channel (``"ocpi"``, ``"email"``...): an
  ``async sender(message) -> DeliveryResult``.
* :class:`OutboxDispatcher` claims due rows and delivers them, **per destination lane** (a channel and its
  ``destination``, or the channel's ``shared_destination``: one SMTP server, one payment provider), each lane
  with its own concurrency and in-flight work, so one slow or failing destination delays only itself (the
  scheduled :meth:`~OutboxDispatcher.pump` never waits for a delivery; a failing lane is paused and probed one
  message at a time; a failure of one message alone, ``DeliveryResult.isolated`` such as an HTTP 409, backs off
  that row only);

  - in order per ``ordering_key``: a message is only claimed when no earlier message of its key is pending or
    parked, so a later message never overtakes an earlier one (not even one that was parked);
  - by ``priority``, then due time (``next_attempt_at``), then id: in every lane an urgent message (a receipt,
    a command result) is claimed before any bulk push that is due, however long the bulk backlog;
  - a claim is a lease: ``attempts`` is incremented and ``next_attempt_at`` pushed past the delivery timeout
    in a short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a compare-and-set on ``attempts``
    everywhere), so several processes never deliver the same row at the same time and a process that dies
    mid-delivery only delays the row until its lease ends;
  - success marks the row delivered once (guarded by the claim); a transient failure reschedules it with
    exponential backoff (capped); a refusal (``DeliveryResult.permanent``) parks it at once and
    ``max_attempts`` transient failures park it too, each with its ``parked_reason``.

* delivery is at-least-once (a lost answer is retried: the destination dedupes, OCPI by object ids), except
  where the destination cannot dedupe (e-mail): its sender calls :func:`mark_sending` before the send, and an
  attempt that finds a mark it did not finish, or that ends without an answer after the mark, parks the row as
  :data:`UNCERTAIN` (at most once; an operator checks and releases it);
* :func:`release` / :func:`retry_parked` put parked rows back in the queue, :func:`supersede` closes rows
  unsent (a re-sync replaced them, see ``ocpi.push.resync``).
* :func:`list_messages`, :func:`outbox_stats` and :func:`backlog` are what ``evhub outbox list``, the
  ``evhub_outbox_backlog`` metric and an OCPI partner's health show.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from kernel import metrics
from kernel.db.engine import Database
from kernel.models.outbox import OutboxMessage, OutboxPriority, OutboxStatus
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

# defined with every other metric in kernel.metrics
DELIVERED = metrics.OUTBOX_DELIVERED
FAILED_ATTEMPTS = metrics.OUTBOX_FAILED_ATTEMPTS
PARKED = metrics.OUTBOX_PARKED
PENDING = metrics.OUTBOX_PENDING
BACKLOG = metrics.OUTBOX_BACKLOG
OLDEST_PENDING = metrics.OUTBOX_OLDEST_PENDING
DELIVERY_SECONDS = metrics.OUTBOX_DELIVERY_SECONDS
LANE_IN_FLIGHT = metrics.OUTBOX_LANE_IN_FLIGHT
LANE_SECONDS = metrics.OUTBOX_LANE_SECONDS


@dataclass(frozen=True)
class DeliveryResult:
    """What a channel sender reports for one attempt.

    ``ok`` delivered (acknowledged by the destination); ``permanent`` a refusal that retrying the same message
    cannot fix (parked at once); otherwise a transient failure retried with backoff (``retry_after`` seconds if
    the destination asked for a delay). ``isolated``: a transient failure of this message alone (the destination
    answered, but not for this object: an HTTP 409 conflict, a failed precondition), retried with the row's own
    backoff without pausing the destination's lane. ``result`` is stored on the row (e.g. a Location header).
    """

    ok: bool
    permanent: bool = False
    error: str | None = None
    uncertain: bool = False  # the message may have reached the destination: parked, never resent by itself
    retry_after: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    isolated: bool = False  # a failure of this message alone: its lane is not paused

    @classmethod
    def delivered(cls, **result: Any) -> DeliveryResult:
        return cls(ok=True, result=result)

    @classmethod
    def retry(cls, error: str, retry_after: float | None = None) -> DeliveryResult:
        return cls(ok=False, error=error, retry_after=retry_after)

    @classmethod
    def conflict(cls, error: str, retry_after: float | None = None) -> DeliveryResult:
        """A transient failure of this message only (the destination is up): retried, its lane keeps going."""
        return cls(ok=False, error=error, retry_after=retry_after, isolated=True)

    @classmethod
    def give_up(cls, error: str) -> DeliveryResult:
        return cls(ok=False, permanent=True, error=error)

    @classmethod
    def unsure(cls, error: str, **result: Any) -> DeliveryResult:
        """The send may or may not have reached the destination (no answer after the data went out)."""
        return cls(ok=False, uncertain=True, error=error, result=result)


REFUSED = "refused"
"""How the ``parked_reason`` of a message the destination refused begins (``refused: <answer>``)."""
GAVE_UP = "gave up"
"""How the ``parked_reason`` of a message given up after ``max_attempts`` begins."""
UNCERTAIN = "uncertain"
"""How the ``parked_reason`` of a message that may have been delivered begins (a channel whose destination
cannot dedupe, e-mail: an attempt marked it sending and never learned the outcome). An operator checks the
destination (the mail server's log for the Message-ID in ``result.uncertain``) and releases it or not."""
SENDING = "sending"
"""The key of ``result`` that :func:`mark_sending` sets while an attempt may be handing the message over."""

OPEN_STATUSES = (OutboxStatus.PENDING, OutboxStatus.PARKED)
"""Not delivered and not closed: a row of these blocks the later rows of its ordering key."""

Sender = Callable[[OutboxMessage], Awaitable[DeliveryResult]]
_CHANNELS: dict[str, Sender] = {}
_SHARED: dict[str, str] = {}  # channel -> the one destination all its messages go through (a mail server)
_CONCURRENCY: dict[str, int] = {}
_MARKED: set[tuple[int, int]] = set()  # (id, attempt) marked sending in this process, not finished yet
DEFAULT_LANE_CONCURRENCY = 4
"""Deliveries one destination lane runs at once (per process) unless its channel says otherwise."""


def register_channel(
    name: str, sender: Sender, *, shared_destination: str | None = None, concurrency: int | None = None
) -> None:
    """Make ``sender`` deliver the messages of channel ``name`` (replaces an earlier registration).

    Each destination is a lane with its own ``concurrency`` (default :data:`DEFAULT_LANE_CONCURRENCY`):
    ``(channel, row.destination)`` (an OCPI partner), or ``(channel, shared_destination)`` for a channel whose
    rows all go through one server whatever their ``destination`` says (e-mail: the SMTP server)."""
    _CHANNELS[name] = sender
    if shared_destination is not None:
        _SHARED[name] = shared_destination
    else:
        _SHARED.pop(name, None)
    if concurrency is not None:
        _CONCURRENCY[name] = max(1, concurrency)
    else:
        _CONCURRENCY.pop(name, None)


def unregister_channel(name: str) -> None:
    _CHANNELS.pop(name, None)
    _SHARED.pop(name, None)
    _CONCURRENCY.pop(name, None)


def lane_of(channel: str, destination: str) -> tuple[str, str]:
    """The delivery lane of a row: its channel and partner, or the channel's shared destination."""
    return (channel, _SHARED.get(channel, destination))


async def mark_sending(db: Database, message: OutboxMessage, **info: Any) -> bool:
    """Record durably, before a send the destination cannot dedupe, that this attempt is handing the message
    over (``result.sending``: the attempt, the time and ``info`` such as the Message-ID). A later attempt that
    finds the mark (this one died or its lease ended without an outcome) parks the row as
    :data:`UNCERTAIN` instead of sending again. Returns False when the lease was lost: then do not send."""
    if message.id is None:  # not a stored row (a sender called directly): no lease to guard, nothing to mark
        return True
    mark = {"attempt": message.attempts, "at": utcnow().isoformat(), **info}
    async with db.session() as db_session:
        res = await db_session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message.id,
                OutboxMessage.attempts == message.attempts,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
            .values(result={**(message.result or {}), SENDING: mark}, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        assert isinstance(res, CursorResult), "an UPDATE returns a cursor result"
        if res.rowcount != 1:
            return False
    _MARKED.add((message.id, message.attempts))
    return True


def registered_channels() -> list[str]:
    return sorted(_CHANNELS)


async def enqueue(
    db_session: AsyncSession,
    channel: str,
    destination: str,
    ordering_key: str,
    payload: dict[str, Any],
    dedupe_key: str | None = None,
    *,
    not_before: datetime | None = None,
    priority: int = OutboxPriority.URGENT,
) -> OutboxMessage | None:
    """Add a message in the caller's transaction. Returns it, or None when ``dedupe_key`` was already used
    (then nothing is added: enqueueing is idempotent).

    ``priority`` (:class:`OutboxPriority`, lower first) orders the claim before the due time. The default is
    ``URGENT``: what a person or a real-time exchange waits for (receipts, payments, reminders, command results);
    producers of bulk state pushes pass ``BULK`` (OCPI locations, tariffs, sessions), records ``NORMAL``."""
    if dedupe_key is not None:
        existing = await db_session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
        )
        if existing is not None:
            return None
    message = OutboxMessage(
        channel=channel,
        destination=destination,
        ordering_key=ordering_key,
        payload=payload,
        dedupe_key=dedupe_key,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=not_before or utcnow(),
        result={},
        priority=int(priority),
        coalesced=0,
    )
    if dedupe_key is None:
        db_session.add(message)
        await db_session.flush()
        return message
    try:
        async with db_session.begin_nested():
            db_session.add(message)
            await db_session.flush()
    except IntegrityError:  # a concurrent transaction used the same dedupe key
        return None
    return message


@dataclass
class BackoffPolicy:
    """``base * 2**(attempt-1)`` seconds, capped, with +-``jitter`` (fraction)."""

    base: float = 2.0
    cap: float = 600.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        raw = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        if self.jitter:
            raw *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, raw)


@dataclass
class _Claim:
    id: int
    attempts: int
    channel: str
    message: OutboxMessage

    @property
    def lane(self) -> tuple[str, str]:
        return lane_of(self.channel, self.message.destination)


@dataclass
class _Lane:
    """One destination's own work in this process: what it has in flight, and its pause after failures."""

    in_flight: set[int] = field(default_factory=set)
    failures: int = 0  # transient failures in a row
    paused_until: datetime | None = None


class OutboxDispatcher:
    """Claims due outbox rows and delivers them through the registered channel senders, per destination lane.

    ``max_attempts`` default (500 attempts with a 10-minute cap) keeps retrying for about three days, so a
    partner that was down for a day still receives everything.

    :meth:`pump` (the scheduled job) claims only what the lanes with free capacity can take, starts each
    delivery as its own task and returns; a finished delivery pumps again, so a lane stays busy without
    waiting for the next tick. A transient failure pauses its lane (``backoff`` by the failures in a row,
    at most ``lane_pause_cap`` seconds): a partner that is down gets one probe per pause, not its backlog.
    :meth:`run_once` / :meth:`drain` / :meth:`tick` deliver and wait (tests, the CLI).
    """

    def __init__(
        self,
        db: Database,
        *,
        batch_size: int = 50,
        concurrency: int = 10,
        lease_seconds: float = 120.0,
        max_attempts: int = 500,
        backoff: BackoffPolicy | None = None,
        channels: list[str] | None = None,
        lane_pause_cap: float = 30.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.db = db
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.backoff = backoff or BackoffPolicy()
        self.channels = channels
        self.lane_pause_cap = lane_pause_cap
        self.stop_grace = stop_grace
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump_lock = asyncio.Lock()
        self._again = False
        self._closed = False

    def _channels(self) -> list[str]:
        return self.channels if self.channels is not None else registered_channels()

    def _due_query(self, now: datetime, channels: list[str], closed: set[tuple[str, str]]) -> Any:
        earlier = aliased(OutboxMessage)
        blocked = (
            select(earlier.id)
            .where(
                and_(
                    earlier.channel == OutboxMessage.channel,
                    earlier.ordering_key == OutboxMessage.ordering_key,
                    earlier.id < OutboxMessage.id,
                    earlier.status.in_(OPEN_STATUSES),
                )
            )
            .exists()
        )
        query = select(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.channel.in_(channels),
            ~blocked,
        )
        shared = sorted({ch for ch, _ in closed if ch in _SHARED})
        pairs = sorted((ch, dest) for ch, dest in closed if ch not in _SHARED)
        if shared:
            query = query.where(OutboxMessage.channel.not_in(shared))
        if pairs:
            query = query.where(
                not_(
                    or_(
                        *(
                            and_(OutboxMessage.channel == ch, OutboxMessage.destination == dest)
                            for ch, dest in pairs
                        )
                    )
                )
            )
        # the most urgent first, then the longest-waiting: a receipt or a command result never waits behind a
        # backlog of bulk pushes, and a lane probing a failing destination works through its rows in turn
        return query.order_by(OutboxMessage.priority, OutboxMessage.next_attempt_at, OutboxMessage.id)

    async def _lease(
        self, limit: int, closed: set[tuple[str, str]], room: Callable[[tuple[str, str]], int] | None
    ) -> tuple[list[_Claim], bool]:
        """Lease up to ``limit`` due rows outside the ``closed`` lanes, at most ``room(lane)`` more per lane.
        Returns the claims and whether a lane filled up (rows of it were left for a next query)."""
        channels = self._channels()
        if not channels:
            return [], False
        now = utcnow()
        query = self._due_query(now, channels, closed).limit(limit)
        claims: list[_Claim] = []
        taken: dict[tuple[str, str], int] = {}
        filled = False
        async with self.db.session() as db_session:
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True, of=OutboxMessage)
            rows = list((await db_session.scalars(query)).all())
            lease_until = now + timedelta(seconds=self.lease_seconds)
            for row in rows:
                lane = lane_of(row.channel, row.destination)
                if room is not None and taken.get(lane, 0) >= room(lane):
                    closed.add(lane)
                    filled = True
                    continue
                res = await db_session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id == row.id,
                        OutboxMessage.attempts == row.attempts,
                        OutboxMessage.status == OutboxStatus.PENDING,
                        # the payload read is the row's: a merge (coalesce) since the read loses this claim
                        OutboxMessage.coalesced == row.coalesced,
                    )
                    .values(attempts=row.attempts + 1, next_attempt_at=lease_until, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                assert isinstance(res, CursorResult), "an UPDATE returns a cursor result"
                if res.rowcount == 1:
                    # the sender sees the attempt it makes (mark_sending's guard)
                    set_committed_value(row, "attempts", row.attempts + 1)
                    claims.append(_Claim(row.id, row.attempts, row.channel, row))
                    taken[lane] = taken.get(lane, 0) + 1
        return claims, filled

    async def claim(self, limit: int | None = None) -> list[_Claim]:
        """Lease up to ``limit`` due messages, at most one per ordering key, the earliest of each key."""
        claims, _ = await self._lease(limit or self.batch_size, set(), None)
        return claims

    async def _finish(self, claim: _Claim, outcome: DeliveryResult) -> None:
        now = utcnow()
        guard = (
            OutboxMessage.id == claim.id,
            OutboxMessage.attempts == claim.attempts,
            OutboxMessage.status == OutboxStatus.PENDING,
        )
        failing_since = claim.message.failing_since or now
        before = {k: v for k, v in (claim.message.result or {}).items() if k != SENDING}
        if outcome.ok:
            values: dict[str, Any] = {
                "status": OutboxStatus.DELIVERED,
                "delivered_at": now,
                "result": outcome.result,
                "last_error": None,
                "failing_since": None,
                "parked_reason": None,
            }
            DELIVERED.labels(claim.channel).inc()
        elif outcome.uncertain or outcome.permanent or claim.attempts >= self.max_attempts:
            result = outcome.result
            if outcome.uncertain:
                reason = f"{UNCERTAIN}: {outcome.error}"
                result = before | outcome.result
            elif outcome.permanent:
                reason = f"{REFUSED}: {outcome.error}"
            else:
                span = _span(now - failing_since)
                reason = f"{GAVE_UP} after {claim.attempts} attempts over {span}: {outcome.error}"
            values = {
                "status": OutboxStatus.PARKED,
                "last_error": outcome.error,
                "result": result,
                "failing_since": failing_since,
                "parked_reason": reason[:2000],
            }
            FAILED_ATTEMPTS.labels(claim.channel).inc()
            PARKED.labels(claim.channel).inc()
            log.warning("outbox message %s parked: %s", claim.id, reason[:500])
        else:
            delay = self.backoff.delay(claim.attempts)
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, self.backoff.cap))
            values = {
                "next_attempt_at": now + timedelta(seconds=delay),
                "last_error": outcome.error,
                "failing_since": failing_since,
                "result": before,  # a sending mark the sender left is cleared: it said nothing went out
            }
            FAILED_ATTEMPTS.labels(claim.channel).inc()
        values["updated_at"] = now
        async with self.db.session() as db_session:
            await db_session.execute(
                update(OutboxMessage)
                .where(*guard)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        _MARKED.discard((claim.id, claim.attempts))

    async def _attempt(self, claim: _Claim) -> DeliveryResult:
        """One attempt through the channel's sender, bounded by the lease; never raises."""
        mark = (claim.message.result or {}).get(SENDING)
        if mark is not None:  # an earlier attempt marked it sending and never finished: it may have gone out
            return DeliveryResult.unsure(
                f"attempt {mark.get('attempt')} was sending it at {mark.get('at')} and never finished; "
                "it may have been delivered (check the destination, then release it to send again)",
                uncertain=mark,
            )
        sender = _CHANNELS.get(claim.channel)
        if sender is None:
            return DeliveryResult.retry(f"no sender registered for channel {claim.channel!r}")
        try:
            return await asyncio.wait_for(sender(claim.message), timeout=self.lease_seconds * 0.8)
        except Exception as exc:  # a sender bug must not stop delivery of the others
            error = "timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, TimeoutError):
                log.exception("outbox sender for %s failed", claim.channel)
            if (claim.id, claim.attempts) in _MARKED:  # it was marked sending: it may have gone out
                return DeliveryResult.unsure(f"the send ended without an answer: {error}")
            return DeliveryResult.retry(error)

    async def _deliver(self, claim: _Claim, gate: asyncio.Semaphore) -> bool:
        async with gate:
            started = asyncio.get_running_loop().time()
            outcome = await self._attempt(claim)
            DELIVERY_SECONDS.labels(claim.channel).observe(asyncio.get_running_loop().time() - started)
        await self._finish(claim, outcome)
        return outcome.ok

    async def run_once(self) -> int:
        """Claim one batch and deliver it (concurrently across keys). Returns how many were delivered."""
        claims = await self.claim()
        if not claims:
            return 0
        gate = asyncio.Semaphore(self.concurrency)
        results = await asyncio.gather(*(self._deliver(c, gate) for c in claims))
        return sum(1 for ok in results if ok)

    async def drain(self, max_rounds: int = 100) -> int:
        """Run batches until nothing is due (tests, CLI). Returns how many were delivered."""
        total = 0
        for _ in range(max_rounds):
            claims = await self.claim()
            if not claims:
                break
            gate = asyncio.Semaphore(self.concurrency)
            results = await asyncio.gather(*(self._deliver(c, gate) for c in claims))
            total += sum(1 for ok in results if ok)
        return total

    # -- per-destination lanes (the scheduled path) -------------------------------------------------------

    def _lane(self, key: tuple[str, str]) -> _Lane:
        return self._lanes.setdefault(key, _Lane())

    def _room(self, key: tuple[str, str]) -> int:
        lane = self._lanes.get(key)
        if lane is None:
            return _CONCURRENCY.get(key[0], DEFAULT_LANE_CONCURRENCY)
        # a failing destination gets one probe at a time; its full concurrency once an attempt succeeded
        limit = 1 if lane.failures else _CONCURRENCY.get(key[0], DEFAULT_LANE_CONCURRENCY)
        return limit - len(lane.in_flight)

    def _closed_lanes(self) -> set[tuple[str, str]]:
        now = utcnow()
        return {
            key
            for key, lane in self._lanes.items()
            if self._room(key) <= 0 or (lane.paused_until is not None and lane.paused_until > now)
        }

    async def pump(self) -> int:
        """The scheduled job: lease what the open lanes can take, start each delivery, return (never waits for
        a delivery). Returns how many deliveries it started."""
        if self._closed:
            return 0
        if self._pump_lock.locked():
            self._again = True  # the running pump looks again before it returns
            return 0
        started = 0
        async with self._pump_lock:
            try:
                for _ in range(100):
                    self._again = False
                    closed = self._closed_lanes()
                    claims, filled = await self._lease(self.batch_size, closed, self._room)
                    for claim in claims:
                        self._start(claim)
                    started += len(claims)
                    if not (filled or self._again or len(claims) >= self.batch_size):
                        break
            except Exception:
                log.exception("outbox dispatcher pump failed")
        return started

    def _start(self, claim: _Claim) -> None:
        lane = self._lane(claim.lane)
        lane.in_flight.add(claim.id)
        LANE_IN_FLIGHT.labels(*claim.lane).set(len(lane.in_flight))
        task = asyncio.create_task(self._run(claim, lane))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, claim: _Claim, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            outcome = await self._attempt(claim)
            elapsed = loop.time() - started
            DELIVERY_SECONDS.labels(claim.channel).observe(elapsed)
            LANE_SECONDS.labels(*claim.lane).observe(elapsed)
            if outcome.ok or outcome.permanent or outcome.uncertain or outcome.isolated:
                # the destination answered: one object's refusal or conflict says nothing about the others
                lane.failures, lane.paused_until = 0, None
            else:
                lane.failures += 1
                pause = min(self.backoff.delay(lane.failures), self.lane_pause_cap)
                lane.paused_until = utcnow() + timedelta(seconds=pause)
            await self._finish(claim, outcome)
        except Exception:
            log.exception("outbox delivery of message %s failed", claim.id)  # its lease brings it back
        finally:
            lane.in_flight.discard(claim.id)
            LANE_IN_FLIGHT.labels(*claim.lane).set(len(lane.in_flight))
        if not self._closed:
            await self.pump()  # the lane has room again

    async def idle(self) -> None:
        """Wait until no delivery started by :meth:`pump` runs."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def tick(self) -> None:
        """Pump, wait until every delivery it started (and what they pumped) finished, refresh the gauges."""
        await self.pump()
        await self.idle()
        try:
            await refresh_metrics(self.db)
        except Exception:
            log.exception("outbox metrics refresh failed")

    async def scheduled(self) -> None:
        """What the scheduler runs every interval: :meth:`pump` and the gauges (returns while deliveries run)."""
        await self.pump()
        try:
            await refresh_metrics(self.db)
        except Exception:
            log.exception("outbox metrics refresh failed")

    async def aclose(self) -> None:
        """Stop pumping; let running deliveries finish for ``stop_grace`` seconds, then cancel them (their
        leases bring them back, or park them as uncertain when a send may have happened)."""
        self._closed = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=self.stop_grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _span(delta: timedelta) -> str:
    """``3d 4h``, ``12m 5s``, ``40s``: how long something lasted, for a reason an operator reads."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


DestinationNames = Callable[[AsyncSession, list[str]], Awaitable[dict[str, str]]]
_NAMERS: dict[str, DestinationNames] = {}
_BACKLOG_LABELS: set[str] = set()


def name_destinations(channel: str, namer: DestinationNames) -> None:
    """Let the ``evhub_outbox_backlog`` gauge show the backlog of ``channel`` per destination, labelled with the
    names ``namer(db_session, destinations)`` gives (the ``ocpi`` channel: partner names) for the destinations
    with a backlog and any others it knows (those show 0). Channels without a namer (emails: their
    destinations are addresses) are not in that gauge."""
    _NAMERS[channel] = namer


async def refresh_metrics(db: Database) -> None:
    """Set the pending gauges from the table, and the backlog per named destination."""
    now = utcnow()
    async with db.session() as db_session:
        rows = (
            await db_session.execute(
                select(OutboxMessage.channel, func.count(), func.min(OutboxMessage.created_at))
                .where(OutboxMessage.status == OutboxStatus.PENDING)
                .group_by(OutboxMessage.channel)
            )
        ).all()
        backlog_by_label: dict[str, int] = {}
        for channel, namer in list(_NAMERS.items()):
            counts = (
                await db_session.execute(
                    select(OutboxMessage.destination, func.count())
                    .where(OutboxMessage.channel == channel, OutboxMessage.status.in_(OPEN_STATUSES))
                    .group_by(OutboxMessage.destination)
                )
            ).all()
            names = await namer(db_session, [d for d, _ in counts])
            for label in names.values():
                backlog_by_label.setdefault(label, 0)
            for destination, count in counts:
                label = names.get(destination, destination)
                backlog_by_label[label] = backlog_by_label.get(label, 0) + count
    seen = set()
    for channel, count, oldest in rows:
        seen.add(channel)
        PENDING.labels(channel).set(count)
        OLDEST_PENDING.labels(channel).set((now - oldest).total_seconds() if oldest else 0)
    for channel in registered_channels():
        if channel not in seen:
            PENDING.labels(channel).set(0)
            OLDEST_PENDING.labels(channel).set(0)
    for label in _BACKLOG_LABELS - set(backlog_by_label):
        BACKLOG.labels(label).set(0)
    for label, count in backlog_by_label.items():
        BACKLOG.labels(label).set(count)
    _BACKLOG_LABELS.update(backlog_by_label)


@dataclass(frozen=True)
class OutboxRow:
    """One line of ``evhub outbox list``."""

    id: int
    channel: str
    destination: str
    ordering_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    parked_reason: str | None
    summary: str
    result: dict[str, Any] = field(default_factory=dict)  # e.g. a Location header, or what superseded it


def _summary(payload: dict[str, Any]) -> str:
    if "method" in payload:
        return f"{payload.get('method')} {payload.get('module', '')}{payload.get('path', '')}".strip()
    return str(payload.get("subject") or payload.get("kind") or "")[:80]


async def list_messages(
    db: Database,
    *,
    status: str | None = None,
    channel: str | None = None,
    destination: str | None = None,
    limit: int = 100,
) -> list[OutboxRow]:
    """Outbox rows, newest first, optionally filtered (``status``: pending, delivered, parked, superseded)."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status:
        query = query.where(OutboxMessage.status == OutboxStatus(status))
    if channel:
        query = query.where(OutboxMessage.channel == channel)
    if destination:
        query = query.where(OutboxMessage.destination == destination)
    async with db.session() as db_session:
        rows = (await db_session.scalars(query)).all()
    return [
        OutboxRow(
            id=r.id,
            channel=r.channel,
            destination=r.destination,
            ordering_key=r.ordering_key,
            status=str(r.status),
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at,
            created_at=r.created_at,
            delivered_at=r.delivered_at,
            last_error=r.last_error,
            parked_reason=r.parked_reason,
            summary=_summary(r.payload or {}),
            result=dict(r.result or {}),
        )
        for r in rows
    ]


async def outbox_stats(db: Database, *, channel: str | None = None, destination: str | None = None) -> dict:
    """Counts per status plus the oldest pending message's creation time."""
    query = select(OutboxMessage.status, func.count(), func.min(OutboxMessage.created_at)).group_by(
        OutboxMessage.status
    )
    if channel:
        query = query.where(OutboxMessage.channel == channel)
    if destination:
        query = query.where(OutboxMessage.destination == destination)
    async with db.session() as db_session:
        rows = (await db_session.execute(query)).all()
    stats: dict[str, Any] = {s.value: 0 for s in OutboxStatus} | {"oldest_pending": None}
    for status, count, oldest in rows:
        stats[str(status)] = count
        if str(status) == OutboxStatus.PENDING.value:
            stats["oldest_pending"] = oldest
    return stats


@dataclass(frozen=True)
class Backlog:
    """What one destination of a channel still has to receive (``evhub outbox list``, partner health)."""

    channel: str
    destination: str
    pending: int
    parked: int
    oldest_pending: datetime | None  # creation time of the oldest pending message
    failing_since: datetime | None  # the earliest start of a run of failed attempts of an open message
    last_error: str | None  # of the open message that failed last
    parked_reason: str | None = None  # of the newest parked message


async def backlog(
    db: Database, *, channel: str | None = None, destination: str | None = None
) -> list[Backlog]:
    """Per channel and destination with open (pending or parked) messages, by channel and destination."""
    query = (
        select(
            OutboxMessage.channel,
            OutboxMessage.destination,
            OutboxMessage.status,
            func.count(),
            func.min(OutboxMessage.created_at),
            func.min(OutboxMessage.failing_since),
        )
        .where(OutboxMessage.status.in_(OPEN_STATUSES))
        .group_by(OutboxMessage.channel, OutboxMessage.destination, OutboxMessage.status)
    )
    last_error = (
        select(OutboxMessage.last_error)
        .where(OutboxMessage.status.in_(OPEN_STATUSES), OutboxMessage.last_error.is_not(None))
        .order_by(OutboxMessage.updated_at.desc(), OutboxMessage.id.desc())
    )
    if channel:
        query = query.where(OutboxMessage.channel == channel)
        last_error = last_error.where(OutboxMessage.channel == channel)
    if destination:
        query = query.where(OutboxMessage.destination == destination)
        last_error = last_error.where(OutboxMessage.destination == destination)
    async with db.session() as db_session:
        rows = (await db_session.execute(query)).all()
        acc: dict[tuple[str, str], dict[str, Any]] = {}
        for ch, dest, status, count, oldest, failing in rows:
            entry = acc.setdefault(
                (ch, dest), {"pending": 0, "parked": 0, "oldest_pending": None, "failing_since": None}
            )
            entry[str(status)] = count
            if status == OutboxStatus.PENDING:
                entry["oldest_pending"] = oldest
            if failing is not None and (entry["failing_since"] is None or failing < entry["failing_since"]):
                entry["failing_since"] = failing
        errors: dict[tuple[str, str], str] = {}
        for key in acc:
            mine = (OutboxMessage.channel == key[0], OutboxMessage.destination == key[1])
            error = await db_session.scalar(last_error.where(*mine).limit(1))
            if error is not None:
                errors[key] = error
            if acc[key]["parked"]:
                acc[key]["parked_reason"] = await db_session.scalar(
                    select(OutboxMessage.parked_reason)
                    .where(*mine, OutboxMessage.status == OutboxStatus.PARKED)
                    .order_by(OutboxMessage.id.desc())
                    .limit(1)
                )
    return [
        Backlog(channel=ch, destination=dest, last_error=errors.get((ch, dest)), **entry)
        for (ch, dest), entry in sorted(acc.items())
    ]


async def release(db_session: AsyncSession, ids: list[int]) -> int:
    """Put these parked messages back in the queue, due now, with a fresh count of attempts (in the caller's
    transaction). Returns how many were parked."""
    if not ids:
        return 0
    res = await db_session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.PARKED)
        .values(
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
            parked_reason=None,
            failing_since=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(res, CursorResult), "an UPDATE returns a cursor result"
    return res.rowcount or 0


async def supersede(
    db_session: AsyncSession, ids: list[int], replaced_by: str, *, unsent_only: bool = False
) -> int:
    """Close these open messages unsent (status ``superseded``, ``result.superseded_by`` says what replaced
    them) and free their dedupe keys, in the caller's transaction. Returns how many were open.

    ``unsent_only``: only those still pending that no attempt ever leased (``attempts == 0``): a message that
    may be on its way, or may have reached the destination, is left alone (a dispatcher that read such a row
    before this commits loses its claim: the claim requires the row still pending)."""
    if not ids:
        return 0
    guard: list[ColumnElement[bool]] = [OutboxMessage.id.in_(ids), OutboxMessage.status.in_(OPEN_STATUSES)]
    if unsent_only:
        guard += [OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.attempts == 0]
    res = await db_session.execute(
        update(OutboxMessage)
        .where(*guard)
        .values(
            status=OutboxStatus.SUPERSEDED,
            result={"superseded_by": replaced_by},
            dedupe_key=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(res, CursorResult), "an UPDATE returns a cursor result"
    return res.rowcount or 0


async def retry_parked(db: Database, message_id: int | None = None, *, channel: str | None = None) -> int:
    """Put parked messages (one, or all, or all of a channel) back to pending. Returns how many."""
    async with db.session() as db_session:
        query = select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.PARKED)
        if message_id is not None:
            query = query.where(OutboxMessage.id == message_id)
        if channel is not None:
            query = query.where(OutboxMessage.channel == channel)
        ids = list((await db_session.scalars(query)).all())
        return await release(db_session, ids)


TAIL_LIMIT = 200
"""How far back :func:`unsent_tail` looks (a key with more unsent messages than this merges among the newest)."""


async def unsent_tail(db_session: AsyncSession, channel: str, ordering_key: str) -> list[OutboxMessage]:
    """The messages of an ordering key that no attempt ever leased, newest first, back to the newest one that
    was tried, parked or closed (in the caller's transaction). Only the earliest open message of a key can be
    in flight (the others wait behind it), so these are all certainly unsent: a channel may merge a new message
    into one of them (:func:`coalesce`) or close them (:func:`supersede` with ``unsent_only``)."""
    rows = (
        await db_session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.ordering_key == ordering_key,
                OutboxMessage.status.in_(OPEN_STATUSES),
            )
            .order_by(OutboxMessage.id.desc())
            .limit(TAIL_LIMIT)
        )
    ).all()
    tail: list[OutboxMessage] = []
    for row in rows:
        if row.status != OutboxStatus.PENDING or row.attempts != 0:
            break
        tail.append(row)
    return tail


async def coalesce(db_session: AsyncSession, message: OutboxMessage, payload: dict[str, Any]) -> bool:
    """Replace the payload of an unsent message by ``payload`` (a later message merged into it), in the caller's
    transaction, counting it in ``coalesced``. Compare-and-set: False (nothing changed; queue the later message
    as its own row) when an attempt leased the row or another merge changed it since it was read."""
    res = await db_session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message.id,
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.attempts == 0,
            OutboxMessage.coalesced == message.coalesced,
        )
        .values(payload=payload, coalesced=message.coalesced + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    assert isinstance(res, CursorResult), "an UPDATE returns a cursor result"
    if res.rowcount != 1:
        return False
    set_committed_value(message, "payload", payload)
    set_committed_value(message, "coalesced", message.coalesced + 1)
    return True
