"""Prometheus metrics: every metric evhub exports is defined here, and ``/metrics`` (:mod:`evhub.app`) renders them.

The code that counts calls the small helpers below at its hook point (the gateway's frame dispatch, rating,
settlement, receipts, the HTTP middleware); docs/design.md ("Observability") lists every metric with its type
and labels. Three kinds of values:

* **Counters and histograms of this process** (messages, CALLERRORs, CDRs created, pricing time, HTTP ...).
  ``evhub serve`` with ``EVHUB_OCPP_WORKERS=N`` runs N - 1 extra OCPP processes without an HTTP app: their
  gateway counters are not in the main process's ``/metrics`` (each process counts its own; no multiprocess
  aggregation). Scrape each ``evhub serve`` node and sum over nodes.
* **Connected chargers**, counted at scrape from this process's gateway connections (so also per process).
* **Database gauges** (sessions open, waiting for pricing, failed pricing), counted at scrape by one indexed
  query (:func:`refresh_database_gauges`): the same cluster-wide value on every node (use ``max`` over nodes).

The OCPP hot path pays one integer increment in a dictionary per message (:func:`ocpp_message_counters`).
"""

from __future__ import annotations

import collections
import logging
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from kernel.models import ChargingSession, PricingState

if TYPE_CHECKING:
    from starlette.types import Scope

    from kernel.db.engine import Database

log = logging.getLogger(__name__)

UNKNOWN_ACTION = "(unknown)"
"""The action label of a CALL naming an action the gateway does not implement (keeps the label set bounded)."""
NO_ACTION = "(none)"
"""The action label of a CALLERROR answering a frame that is not a well-formed CALL."""
UNMATCHED_ROUTE = "(unmatched)"
"""The route label of an HTTP request no route matched (a 404): raw paths never become labels."""

# -- HTTP ------------------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter("evhub_http_requests_total", "HTTP requests served", ["method", "route", "status"])
HTTP_LATENCY = Histogram("evhub_http_request_seconds", "HTTP request latency", ["method", "route"])

# -- outbox (OCPI pushes, emails) ------------------------------------------------------------------------------

OUTBOX_DELIVERED = Counter("evhub_outbox_delivered_total", "Outbox messages delivered", ["channel"])
OUTBOX_FAILED_ATTEMPTS = Counter(
    "evhub_outbox_failed_attempts_total", "Failed delivery attempts", ["channel"]
)
OUTBOX_PARKED = Counter(
    "evhub_outbox_parked_total",
    "Outbox messages parked (refused, or given up after max attempts)",
    ["channel"],
)
OUTBOX_PENDING = Gauge("evhub_outbox_pending", "Outbox messages waiting for delivery", ["channel"])
OUTBOX_BACKLOG = Gauge(
    "evhub_outbox_backlog",
    "Outbox messages not delivered yet (pending + parked) per OCPI partner",
    ["partner"],
)
OUTBOX_OLDEST_PENDING = Gauge(
    "evhub_outbox_oldest_pending_seconds", "Age of the oldest pending outbox message", ["channel"]
)
OUTBOX_DELIVERY_SECONDS = Histogram(
    "evhub_outbox_delivery_seconds", "Time of one delivery attempt", ["channel"]
)
OUTBOX_LANE_IN_FLIGHT = Gauge(
    "evhub_outbox_lane_in_flight",
    "Outbox deliveries running now per destination lane (channel, partner id or shared destination)",
    ["channel", "destination"],
)
OUTBOX_LANE_SECONDS = Histogram(
    "evhub_outbox_lane_delivery_seconds",
    "Time of one delivery attempt per destination lane",
    ["channel", "destination"],
)

# -- OCPP gateway ----------------------------------------------------------------------------------------------

OCPP_CALLERRORS = Counter(
    "evhub_ocpp_callerrors_total",
    "CALLERRORs sent to chargers (code as sent on the wire)",
    ["version", "action", "code"],
)
OCPP_RATE_LIMIT_DISCONNECTS = Counter(
    "evhub_ocpp_rate_limit_disconnects_total",
    "Chargers disconnected for sending above EVHUB_OCPP_RATE_LIMIT / EVHUB_OCPP_RATE_BURST",
    ["version"],
)

# -- pricing, CDRs ---------------------------------------------------------------------------------------------

PRICING_SECONDS = Histogram(
    "evhub_pricing_seconds",
    "Time to price one ended session into its CDR (outcome: priced or failed)",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CDRS_CREATED = Counter(
    "evhub_cdrs_created_total",
    "CDRs created (kind: original, credit, correction)",
    ["kind"],
)

# -- settlement ------------------------------------------------------------------------------------------------

SETTLEMENT_RUNS = Counter(
    "evhub_settlement_runs_total", "Settlement runs finished (mode: run or replay)", ["mode"]
)
SETTLEMENT_FAILURES = Counter("evhub_settlement_run_failures_total", "Settlement runs that raised")

# -- receipts --------------------------------------------------------------------------------------------------

RECEIPTS = Counter(
    "evhub_receipts_total",
    "Receipt emails by outcome: sent, bounced (refused at once or reported later), failed (rejected otherwise)",
    ["outcome"],
)
REMINDER_EMAILS = Counter(
    "evhub_reminder_emails_total",
    "Dunning reminder emails by outcome: sent, bounced (refused at once), failed (rejected otherwise)",
    ["outcome"],
)

# -- tokens ----------------------------------------------------------------------------------------------------

TOKEN_UID_COLLISIONS = Counter(
    "evhub_token_uid_collisions_total",
    "Token stores refused because another issuer holds the uid (kernel.token_uids), by source",
    ["source"],
)

# -- database gauges (refreshed at scrape) ---------------------------------------------------------------------

SESSIONS_OPEN = Gauge("evhub_sessions_open", "Charging sessions that have not ended (all nodes)")
SESSIONS_PRICING_PENDING = Gauge(
    "evhub_sessions_pricing_pending", "Ended sessions waiting to be priced (all nodes)"
)
SESSIONS_PRICING_FAILED = Gauge(
    "evhub_sessions_pricing_failed",
    "Sessions that could not be priced (all nodes; evhub sessions list --state failed)",
)
SESSIONS_HELD = Gauge(
    "evhub_sessions_held",
    "Sessions held for review, never priced nor pushed until released (all nodes; evhub sessions list --state held)",
)


class _ChildCache(dict[tuple[str, ...], Any]):
    """A metric's labelled children by label values: ``labels()`` parses its arguments on every call."""

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, key: tuple[str, ...]) -> Any:
        child = self[key] = self.metric.labels(*key)
        return child


_CALLERRORS = _ChildCache(OCPP_CALLERRORS)


class _OcppMessages(Collector):
    """``evhub_ocpp_messages_total{version, action}``: plain integers the gateway adds to (``counts[action] +=
    1``, a third of a labelled counter's ``inc()``), turned into a counter family at scrape. The gateway and
    ``/metrics`` share one event loop, so no lock is needed."""

    def __init__(self) -> None:
        self.by_version: dict[str, collections.Counter[str]] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "evhub_ocpp_messages", "OCPP CALLs received from chargers", labels=["version", "action"]
        )
        for version, counts in sorted(self.by_version.items()):
            for action, count in sorted(counts.items()):
                family.add_metric([version, action], count)
        yield family


_MESSAGES = _OcppMessages()
REGISTRY.register(_MESSAGES)


def ocpp_message_counters(version: str, actions: Iterable[str] = ()) -> collections.Counter[str]:
    """The message counts of one OCPP version by action, shared by its connections: the gateway counts a
    CALL with ``counts[action] += 1`` (an implemented action, or :data:`UNKNOWN_ACTION`). ``actions`` show
    as 0 before their first message."""
    counts = _MESSAGES.by_version.setdefault(version, collections.Counter())
    for action in (*actions, UNKNOWN_ACTION):
        counts.setdefault(action, 0)
    return counts


def ocpp_callerror(version: str, action: str, code: str) -> None:
    _CALLERRORS[version, action, code].inc()


def ocpp_rate_limit_disconnect(version: str) -> None:
    OCPP_RATE_LIMIT_DISCONNECTS.labels(version).inc()


class _ConnectedChargers(Collector):
    """``evhub_ocpp_connected_chargers{version}``: the connections of this process's gateways, at scrape."""

    def __init__(self) -> None:
        self.gateways: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = {"1.6": 0, "2.0.1": 0}
        for gateway in list(self.gateways):
            for conn in list(gateway.connections.values()):
                counts[conn.version] = counts.get(conn.version, 0) + 1
        family = GaugeMetricFamily(
            "evhub_ocpp_connected_chargers",
            "Chargers connected to this process's OCPP listener",
            labels=["version"],
        )
        for version, count in sorted(counts.items()):
            family.add_metric([version], count)
        yield family


_CONNECTED = _ConnectedChargers()
REGISTRY.register(_CONNECTED)


def watch_gateway(gateway: Any) -> None:
    """Count ``gateway.connections`` (each a connection with ``.version``) in the connected-chargers gauge."""
    _CONNECTED.gateways.add(gateway)


def pricing_done(started: float, *, priced: bool) -> None:
    """One session priced (``priced``) or marked failed, ``started`` being its ``time.perf_counter()``."""
    PRICING_SECONDS.labels("priced" if priced else "failed").observe(time.perf_counter() - started)
    if priced:
        CDRS_CREATED.labels("original").inc()


def cdrs_created(kind: str, count: int = 1) -> None:
    CDRS_CREATED.labels(kind).inc(count)


def settlement_run(mode: str | None) -> None:
    """A settlement run finished (``mode`` run or replay) or raised (``None``)."""
    if mode is None:
        SETTLEMENT_FAILURES.inc()
    else:
        SETTLEMENT_RUNS.labels(mode).inc()


def receipt(outcome: str) -> None:
    RECEIPTS.labels(outcome).inc()


def reminder_email(outcome: str) -> None:
    """A dunning reminder e-mail was sent, bounced or failed (counted apart from the receipts)."""
    REMINDER_EMAILS.labels(outcome).inc()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(method, route).observe(seconds)
    HTTP_REQUESTS.labels(method, route, str(status)).inc()


def route_template(app: Any, scope: Scope, root_path: str) -> str:
    """The path template of the route that served (or would serve) the request, e.g.
    ``/api/chargers/{identity}``, with the prefix of a mounted app (``/ocpi/...``, ``/portal/static/{path}``);
    :data:`UNMATCHED_ROUTE` when no route matches. ``root_path`` is the scope's ``root_path`` before routing
    (mounts extend it)."""
    mounted = str(scope.get("root_path", ""))[len(root_path) :]
    path = _routed_template(scope)
    if path is not None:
        return mounted + path
    if mounted:
        return mounted + "/{path}"
    return _match_template(app, scope)


def _routed_template(scope: Scope) -> str | None:
    """The template routing recorded in the scope. FastAPI (0.16x) keeps a route of a router included with a
    prefix as the router's own (``/{identity}``) in ``scope["route"]``; the prefixed template is then on the
    effective route context it records. Looked up defensively: without it, the route's own path is used."""
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    route = scope.get("route")
    path = getattr(context, "path_format", None) or getattr(route, "path_format", None)
    return path if isinstance(path, str) else None


def _match_template(app: Any, scope: Scope) -> str:
    """Match a request that was answered before routing (e.g. a 401 from the API-key check)."""
    from starlette.routing import Match

    for route in getattr(app, "routes", ()):
        contexts = getattr(route, "effective_route_contexts", None)  # a FastAPI included router
        for candidate in contexts() if callable(contexts) else (route,):
            match, _child = candidate.matches(scope)
            if match == Match.NONE:
                continue
            if hasattr(candidate, "endpoint"):  # a route (or FastAPI's context of one)
                path = getattr(candidate, "path_format", None)
            else:  # a mount
                path = (
                    f"{candidate.path}/{{path}}"
                    if isinstance(getattr(candidate, "path", None), str)
                    else None
                )
            if isinstance(path, str):
                return path
    return UNMATCHED_ROUTE


async def refresh_database_gauges(db: Database) -> None:
    """Set the session gauges from one grouped count over the pricing-state index (the rows not yet priced
    only, so the cost does not grow with the history). A database error leaves the last values."""
    states = (PricingState.NOT_READY, PricingState.PENDING, PricingState.FAILED, PricingState.HELD)
    try:
        async with db.session() as db_session:
            rows = (
                await db_session.execute(
                    select(ChargingSession.pricing_state, func.count())
                    .where(ChargingSession.pricing_state.in_(states))
                    .group_by(ChargingSession.pricing_state)
                )
            ).all()
    except Exception as exc:  # /metrics must answer; the gauges keep their last values
        log.warning("metrics: could not count sessions: %s", type(exc).__name__)
        return
    counts = {state: 0 for state in states}
    counts.update({PricingState(state): int(n) for state, n in rows})
    SESSIONS_OPEN.set(counts[PricingState.NOT_READY])
    SESSIONS_PRICING_PENDING.set(counts[PricingState.PENDING])
    SESSIONS_PRICING_FAILED.set(counts[PricingState.FAILED])
    SESSIONS_HELD.set(counts[PricingState.HELD])
