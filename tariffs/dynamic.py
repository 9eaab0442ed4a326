"""Grid-load dynamic pricing at the edge: load samples in, new tariff versions out.

``record_load`` stores a zone's load sample (idempotent per zone and timestamp) and, for every tariff with
rules attached to that zone, takes one step of the state machine of :mod:`tariffs.core.grid_rules` (first matching rule
wins; an active rule is left only once the load moved ``hysteresis`` points past its threshold; no change
sooner than ``min_hold`` after the last). A change publishes a new immutable tariff version whose
``start_date_time`` is ``max(sample time, now)`` and whose ``last_updated`` is now (the publication): a
sample that arrives late never re-prices minutes already consumed. That version is what partners receive
(the tariff hooks, a required argument, queue it for OCPI in the same transaction) and what sessions from
then on are priced with, so the price charged for every minute is the price published for that minute. A
sample older than the last change is stored but changes nothing (prices already published are never
rewritten).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import GridLoadSample, GridTariffRule, Location, TariffVersion
from kernel.seams import TariffHook
from kernel.timeutil import ensure_utc, utcnow
from tariffs.core.grid_rules import ABOVE, BELOW, DIMENSIONS, GridRule, apply_rule
from tariffs.core.tariff_document import Tariff
from tariffs.core.tariff_json import to_jsonable
from tariffs.tariff_versions import latest_version

NAME_LENGTH = 64
"""Longest rule name (the attachment stores the active rule's name)."""


class GridConfigError(ValueError):
    """Rules, a zone or a load sample the hub cannot accept; the message names the value and why."""


PLACES = 6
"""Decimal places a load, threshold or hysteresis may have (what the database keeps exactly)."""
_LIMIT = Decimal(1_000_000)


def _decimal(value: Any, what: str) -> Decimal:
    """An exact, finite decimal with at most :data:`PLACES` decimals and below a million in size."""
    if isinstance(value, (bool, float)):
        raise GridConfigError(f"{what} {value!r}: expected a decimal number as text or an integer")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except ArithmeticError:
        raise GridConfigError(f"{what} {value!r}: expected a decimal number") from None
    if not number.is_finite() or abs(number) >= _LIMIT:
        raise GridConfigError(f"{what} {value}: expected a finite number below {_LIMIT:,}")
    exponent = number.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -PLACES
        and number != number.quantize(Decimal(1).scaleb(-PLACES))
    ):
        raise GridConfigError(f"{what} {value}: at most {PLACES} decimals")
    return number


def percent(value: Decimal | int | str, what: str) -> Decimal:
    """``value`` as an exact percentage in [0, 100] with at most :data:`PLACES` decimals, or
    :class:`GridConfigError` naming ``what``."""
    try:
        number: Decimal | None = _decimal(value, what)
    except GridConfigError:
        number = None
    if number is None or not Decimal(0) <= number <= Decimal(100):
        shown = repr(value) if isinstance(value, str) else value
        raise GridConfigError(
            f"{what} {shown}: expected a percentage between 0 and 100 (at most {PLACES} decimals)"
        )
    return number + 0  # -0 is 0


def _dimension(name: Any, what: str) -> str:
    upper = str(name).strip().upper()
    if upper not in DIMENSIONS:
        raise GridConfigError(f"{what} {name!r}: expected one of {', '.join(DIMENSIONS)}")
    return upper


def parse_rules(raw: Sequence[dict[str, Any]]) -> list[GridRule]:
    """Rules as stored/given in JSON: ``{"name", "direction": "above"|"below", "threshold", "add": {DIM: per
    unit}, "multiply", "dimensions"}``.

    Refused with :class:`GridConfigError` naming ``rules[i].field``: a missing direction or threshold, a
    threshold outside [0, 100] %, a negative or non-numeric multiplier, an unknown dimension, two rules with
    one name (the state machine tells rules apart by name)."""
    rules: list[GridRule] = []
    for i, item in enumerate(raw):
        where = f"rules[{i}]"
        if not isinstance(item, dict):
            raise GridConfigError(f"{where}: expected an object with direction and threshold")
        for key in ("direction", "threshold"):
            if key not in item:
                raise GridConfigError(f"{where}: missing {key}")
        direction = str(item["direction"]).lower()
        if direction not in (ABOVE, BELOW):
            raise GridConfigError(f"{where}.direction: expected 'above' or 'below'")
        threshold = percent(item["threshold"], f"{where}.threshold")
        multiply = _decimal(item.get("multiply", "1"), f"{where}.multiply")
        if multiply < 0:
            raise GridConfigError(f"{where}.multiply {multiply}: must not be negative")
        add = item.get("add") or {}
        if not isinstance(add, dict):
            raise GridConfigError(f"{where}.add: expected an object of dimension: price per unit")
        adds = {_dimension(k, f"{where}.add"): _decimal(v, f"{where}.add.{k}") for k, v in add.items()}
        dimensions = item.get("dimensions") or DIMENSIONS
        if isinstance(dimensions, str) or not isinstance(dimensions, (list, tuple)):
            raise GridConfigError(f"{where}.dimensions: expected a list of dimensions such as ENERGY")
        name = str(item.get("name") or f"{direction}{threshold}")
        if len(name) > NAME_LENGTH:
            raise GridConfigError(f"{where}.name: at most {NAME_LENGTH} characters")
        if any(r.name == name for r in rules):
            raise GridConfigError(f"{where}.name {name!r}: another rule has that name")
        factory = GridRule.above if direction == ABOVE else GridRule.below
        rules.append(
            factory(
                threshold,
                name=name,
                multiply=multiply,
                dimensions=[_dimension(d, f"{where}.dimensions") for d in dimensions],
                **{k.lower(): v for k, v in adds.items()},
            )
        )
    return rules


async def known_zones(db_session: AsyncSession, *, with_rules: bool = True) -> list[str]:
    """The grid zones the hub knows: those its locations carry (and, ``with_rules``, those rules are
    attached to), sorted."""
    location_zones = select(Location.grid_zone).where(Location.grid_zone.is_not(None))
    zones: Sequence[str | None]
    if with_rules:
        zones = (await db_session.scalars(union(location_zones, select(GridTariffRule.zone)))).all()
    else:
        zones = (await db_session.scalars(location_zones)).all()
    return sorted({z for z in zones if z})


def _check_zone(zone: str, zones: Sequence[str]) -> None:
    if zone not in zones:
        hint = f"known: {', '.join(zones)}" if zones else "no location has a grid zone yet"
        raise GridConfigError(
            f"unknown grid zone {zone!r} ({hint}); locations get one with "
            "`evhub locations import FILE --grid-zone ZONE`"
        )


def rules_to_json(rules: Sequence[GridRule]) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "direction": r.direction,
            "threshold": str(r.threshold),
            "add": {k: str(v) for k, v in r.add.items()},
            "multiply": str(r.multiply),
            "dimensions": list(r.dimensions),
        }
        for r in rules
    ]


@dataclass(frozen=True)
class Decision:
    changed: bool
    rule: GridRule | None


def decide(
    rules: Sequence[GridRule],
    active: GridRule | None,
    last_change_at: datetime | None,
    at: datetime,
    load: Decimal,
    *,
    hysteresis: Decimal,
    min_hold: timedelta,
) -> Decision:
    """One step of the grid state machine (pure): which rule should be active after this sample."""
    wanted: GridRule | None = None
    for rule in rules:
        if (rule is active and rule.holds(load, hysteresis)) or rule.enters(load):
            wanted = rule
            break
    if wanted is None and active is not None and active.holds(load, hysteresis):
        wanted = active
    if last_change_at is not None and at < last_change_at:
        return Decision(False, active)
    if last_change_at is not None and at - last_change_at < min_hold:
        return Decision(False, active)
    return Decision((wanted.name if wanted else None) != (active.name if active else None), wanted)


async def attach_rules(
    db_session: AsyncSession,
    zone: str,
    cpo_id: int,
    tariff_id: str,
    rules: Sequence[dict[str, Any]],
    *,
    hysteresis: Decimal = Decimal(0),
    min_hold_s: int = 0,
) -> GridTariffRule:
    """Attach (or replace) the grid rules of one tariff in one zone.

    The zone must be one a location carries, ``hysteresis`` a percentage in [0, 100] and ``min_hold_s``
    not negative; otherwise :class:`GridConfigError` and nothing is stored."""
    parsed = parse_rules(rules)
    if not parsed:
        raise GridConfigError("rules: give at least one rule")
    hysteresis = percent(hysteresis, "hysteresis")
    if min_hold_s < 0:
        raise GridConfigError(f"min_hold {min_hold_s}: seconds must not be negative")
    _check_zone(zone, await known_zones(db_session, with_rules=False))
    if await latest_version(db_session, cpo_id, tariff_id) is None:
        raise GridConfigError(f"unknown tariff {tariff_id!r} of this CPO; import it first")
    row = await db_session.scalar(
        select(GridTariffRule).where(
            GridTariffRule.zone == zone,
            GridTariffRule.cpo_id == cpo_id,
            GridTariffRule.tariff_id == tariff_id,
        )
    )
    if row is None:
        row = GridTariffRule(zone=zone, cpo_id=cpo_id, tariff_id=tariff_id)
        db_session.add(row)
    row.rules = rules_to_json(parsed)
    row.hysteresis = hysteresis
    row.min_hold_s = min_hold_s
    await db_session.flush()
    return row


async def _base_tariff(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> Tariff:
    base = await db_session.scalar(
        select(TariffVersion)
        .where(
            TariffVersion.cpo_id == cpo_id,
            TariffVersion.tariff_id == tariff_id,
            TariffVersion.source != "grid",
        )
        .order_by(TariffVersion.version.desc())
        .limit(1)
    )
    if base is None:
        raise GridConfigError(f"no base version of tariff {tariff_id}")
    return Tariff.model_validate(base.data)


async def record_load(
    db: Database, zone: str, at: datetime, load: Decimal, hooks: Sequence[TariffHook]
) -> list[TariffVersion]:
    """Store one load sample and publish the tariff versions it causes. Returns the new versions.

    ``hooks`` (required, so that no caller forgets the deliveries) run for every new version in its
    transaction: the OCPI tariff hook queues its pushes there. Pass ``()`` only where nobody is to be told.

    ``load`` must be a percentage in [0, 100] and ``zone`` one the hub knows (:func:`known_zones`);
    otherwise :class:`GridConfigError` and nothing is stored."""
    at = ensure_utc(at)
    load = percent(load, "load_percent")
    published: list[TariffVersion] = []
    async with db.session() as db_session:
        _check_zone(zone, await known_zones(db_session))
        exists = await db_session.scalar(
            select(GridLoadSample.id).where(GridLoadSample.zone == zone, GridLoadSample.timestamp == at)
        )
        if exists is not None:
            return []
        db_session.add(GridLoadSample(zone=zone, timestamp=at, load_percent=load))
        query = select(GridTariffRule).where(GridTariffRule.zone == zone).order_by(GridTariffRule.id)
        if not db.is_sqlite:
            query = query.with_for_update()
        for attachment in (await db_session.scalars(query)).all():
            rules = parse_rules(attachment.rules)
            active = next((r for r in rules if r.name == attachment.active_rule), None)
            decision = decide(
                rules,
                active,
                attachment.last_change_at,
                at,
                load,
                hysteresis=attachment.hysteresis,
                min_hold=timedelta(seconds=attachment.min_hold_s),
            )
            if not decision.changed:
                continue
            base = await _base_tariff(db_session, attachment.cpo_id, attachment.tariff_id)
            now = (
                utcnow()
            )  # the version's transaction, which also queues its pushes; to the wire's milliseconds,
            published_at = now.replace(
                microsecond=now.microsecond // 1000 * 1000
            )  # so row and document agree
            effective = max(at, published_at)  # never before partners could have received it
            version = apply_rule(base, decision.rule, effective, published_at)
            latest = await latest_version(db_session, attachment.cpo_id, attachment.tariff_id)
            data = to_jsonable(version, decimals_as="keep")
            row = TariffVersion(
                cpo_id=attachment.cpo_id,
                tariff_id=attachment.tariff_id,
                version=(latest.version + 1) if latest else 1,
                currency=version.currency,
                type=data.get("type"),
                source="grid",
                start_date_time=effective,
                data=data,
                last_updated=published_at,
                created_at=published_at,
            )
            db_session.add(row)
            await db_session.flush()
            attachment.active_rule = decision.rule.name if decision.rule else None
            attachment.last_change_at = at
            for hook in hooks:
                await hook(db_session, row)
            published.append(row)
    return published
