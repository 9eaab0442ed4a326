"""Split agreements: typed, versioned terms that say how a CDR's money is divided, and how they may change.

Three kinds, each a frozen pydantic model identified by ``agreement_id`` + ``version`` and in force from
``valid_from`` (a date, 00:00 UTC) until ``valid_until`` (exclusive, optional) or the next version:

* :class:`RoamingAgreement` (``emsp``, ``cpo``): the eMSP owes the CPO each CDR's total, incl. VAT.
* :class:`HubFeeAgreement` (``cpo`` or every CPO, ``currency``): the hub's fee, charged to the CPO:
  percentage of the CDR net + fixed per session + per kWh, then clamped to a minimum / maximum per
  session, with its own VAT rate per jurisdiction (the CDR's ``country``).
* :class:`SiteHostAgreement` (``cpo``, ``location_id``): the site host's share, a percentage of the CPO's
  energy revenue (excl. VAT) or a fixed rate per kWh; VAT either carried from the CDR's energy component
  or at the agreement's own rate.

Picking the version in force (:func:`in_force`, vectorised in :mod:`settlement.core.resolve`): every version
has an *effective interval* ``[valid_from, min(valid_until, next version's valid_from))``; the version
whose interval contains the CDR's instant is in force. Different agreements for the same scope must not
overlap (:func:`validate_agreements`).

Changing terms (:func:`check_change`, pure): a version that was in force before the end of the last
closed period is frozen — it can only be superseded by a new version taking effect at or after that
instant (or given a ``valid_until`` that is itself not inside a closed period). Closed periods are never
rewritten.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar, overload

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from kernel.money import normalize_currency, parse_amount, to_decimal

MAX_DECIMALS = 10
"""Decimals a rate or amount of an agreement may have (the split scales every value to integers)."""
MAX_MAGNITUDE = Decimal(10) ** 12


def _exact(value: Any) -> Decimal:
    number = to_decimal(value)
    exponent = number.as_tuple().exponent
    if abs(number) >= MAX_MAGNITUDE:
        raise ValueError(f"{value} is too large (at most {MAX_MAGNITUDE:,} in size)")
    if isinstance(exponent, int) and exponent < -MAX_DECIMALS and number != round(number, MAX_DECIMALS):
        raise ValueError(f"{value} has more than {MAX_DECIMALS} decimals")
    return number


ExactDecimal = Annotated[Decimal, BeforeValidator(_exact)]
"""A Decimal that refuses floats (they are not exact), more than 10 decimals and absurd sizes."""

ALL_CPOS = "*"
"""Scope value of a hub fee agreement that applies to every CPO without one of its own."""


def day_start(day: date) -> datetime:
    """00:00 UTC of ``day``: the instant a ``valid_from`` / ``valid_until`` date stands for."""
    return datetime.combine(day, time(0), tzinfo=UTC)


class _AgreementBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agreement_id: str = Field(min_length=1)
    version: int = Field(ge=1)
    valid_from: date
    valid_until: date | None = None

    @model_validator(mode="after")
    def _interval(self):
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    def scope(self) -> tuple[str, ...]:
        """The keys an agreement of this kind is looked up by (same for every version of one agreement)."""
        raise NotImplementedError

    @property
    def ref(self) -> str:
        return f"{self.agreement_id}@v{self.version}"


def _rate(value: Decimal) -> Decimal:
    if not Decimal(0) <= value <= Decimal(1):
        raise ValueError(f"rate {value} must be a fraction between 0 and 1 (0.2 = 20%)")
    return value


def _non_negative(value: Decimal | None) -> Decimal | None:
    if value is not None and value < 0:
        raise ValueError(f"amount {value} must not be negative")
    return value


class RoamingAgreement(_AgreementBase):
    """eMSP-CPO relationship: the eMSP owes the CPO every CDR's total (excl. and incl. VAT as on the CDR)."""

    kind: Literal["roaming"] = "roaming"
    emsp: str = Field(min_length=1)
    cpo: str = Field(min_length=1)

    def scope(self) -> tuple[str, ...]:
        return (self.emsp, self.cpo)


class HubFeeAgreement(_AgreementBase):
    """The hub's fee per CDR, charged to the CPO, in one currency.

    ``fee = clamp(percentage * CDR total excl. VAT + fixed_per_session + per_kwh * kWh,
    minimum_per_session, maximum_per_session)``, rounded once; VAT = fee * ``vat_rates[country]``.
    """

    kind: Literal["hub_fee"] = "hub_fee"
    hub: str = Field(default="HUB", min_length=1)
    cpo: str = Field(default=ALL_CPOS, min_length=1)
    currency: str
    percentage: ExactDecimal = Decimal(0)
    fixed_per_session: ExactDecimal = Decimal(0)
    per_kwh: ExactDecimal = Decimal(0)
    minimum_per_session: ExactDecimal | None = None
    maximum_per_session: ExactDecimal | None = None
    vat_rates: dict[str, ExactDecimal] = Field(min_length=1)

    @field_validator("currency")
    @classmethod
    def _cur(cls, value: str) -> str:
        return normalize_currency(value)

    @field_validator("percentage")
    @classmethod
    def _pct(cls, value: Decimal) -> Decimal:
        return _rate(value)

    @field_validator("fixed_per_session", "per_kwh", "minimum_per_session", "maximum_per_session")
    @classmethod
    def _amounts(cls, value: Decimal | None) -> Decimal | None:
        return _non_negative(value)

    @field_validator("vat_rates")
    @classmethod
    def _vat(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {k.strip().upper(): _rate(v) for k, v in sorted(value.items())}

    @model_validator(mode="after")
    def _bounds(self):
        for name in ("fixed_per_session", "minimum_per_session", "maximum_per_session"):
            value = getattr(self, name)
            if value is not None:
                try:  # an amount per session is money: exact to the currency's minor unit
                    parse_amount(value, self.currency)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        lo, hi = self.minimum_per_session, self.maximum_per_session
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("minimum_per_session must not exceed maximum_per_session")
        return self

    def scope(self) -> tuple[str, ...]:
        return (self.cpo, self.currency)


class SiteHostAgreement(_AgreementBase):
    """The site host's share of a location's sessions, paid by the CPO.

    Exactly one of ``share_percentage`` (of the CDR's energy cost excl. VAT, i.e. the CPO's energy revenue)
    or ``per_kwh`` (needs ``currency``). ``vat_rate=None`` carries the CDR energy component's VAT
    proportionally; a rate applies that rate to the share instead.
    """

    kind: Literal["site_host"] = "site_host"
    site_host: str = Field(min_length=1)
    cpo: str = Field(min_length=1)
    location_id: str = Field(min_length=1)
    share_percentage: ExactDecimal | None = None
    per_kwh: ExactDecimal | None = None
    currency: str | None = None
    vat_rate: ExactDecimal | None = None

    @field_validator("currency")
    @classmethod
    def _cur(cls, value: str | None) -> str | None:
        return None if value is None else normalize_currency(value)

    @model_validator(mode="after")
    def _mode(self):
        if (self.share_percentage is None) == (self.per_kwh is None):
            raise ValueError("give exactly one of share_percentage or per_kwh")
        if self.share_percentage is not None:
            _rate(self.share_percentage)
        if self.per_kwh is not None:
            _non_negative(self.per_kwh)
            if self.currency is None:
                raise ValueError("per_kwh needs a currency")
        if self.vat_rate is not None:
            _rate(self.vat_rate)
        return self

    def scope(self) -> tuple[str, ...]:
        return (self.cpo, self.location_id)


AnyAgreement = RoamingAgreement | HubFeeAgreement | SiteHostAgreement
"""One agreement of any kind (the plain union; :data:`Agreement` is the same, tagged by ``kind`` for pydantic)."""
Kind = Literal["roaming", "hub_fee", "site_host"]
A = TypeVar("A", bound=AnyAgreement)
T = TypeVar("T")
"""An agreement type: functions that read only the common fields keep the caller's precise type."""
Agreement = Annotated[AnyAgreement, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[list[Agreement]] = TypeAdapter(list[Agreement])
KINDS = ("roaming", "hub_fee", "site_host")


class AgreementInputError(ValueError):
    """Agreements given as JSON that do not validate; the message names each item and field, on one line."""


def _problem(error: Any) -> str:
    """One pydantic error in the words of the JSON the user wrote."""
    kind = error["type"]
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_not_found":
        return f"kind missing: expected one of {', '.join(KINDS)}"
    if kind == "union_tag_invalid":
        return f"kind {error['ctx']['tag']!r}: expected one of {', '.join(KINDS)}"
    if kind in ("model_attributes_type", "model_type", "dict_type"):
        return "expected a JSON object"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


def describe_errors(exc: ValidationError, items: Sequence[Any]) -> str:
    """``agreements[0] (hub_fee F1 v1): currency missing; vat_rates missing`` for the items in ``exc``."""
    by_item: dict[int, list[str]] = defaultdict(list)
    for error in exc.errors():
        index, *rest = error["loc"] or (0,)
        fields = [str(p) for p in rest if p not in KINDS]
        where = ".".join(fields)
        by_item[int(index)].append(f"{where}: {_problem(error)}" if where else _problem(error))
    parts = []
    for index, problems in sorted(by_item.items()):
        item = items[index] if index < len(items) else None
        name = ""
        if isinstance(item, dict):
            label = " ".join(
                str(v)
                for v in (
                    item.get("kind"),
                    item.get("agreement_id"),
                    item.get("version") and f"v{item['version']}",
                )
                if v
            )
            name = f" ({label})" if label else ""
        parts.append(f"agreements[{index}]{name}: " + "; ".join(problems))
    return "; ".join(parts)


def parse_agreements(data: Iterable[dict[str, Any]]) -> list[AnyAgreement]:
    """Validate plain dicts (JSON) into agreements, dispatching on ``kind``.

    Raises :class:`AgreementInputError` with one line naming every bad item and field."""
    items = list(data)
    try:
        return _ADAPTER.validate_python(items)
    except ValidationError as exc:
        raise AgreementInputError(describe_errors(exc, items)) from None


def dump_agreements(agreements: Iterable[AnyAgreement]) -> list[dict[str, Any]]:
    """JSON-ready dicts (Decimals and dates as strings), sorted by kind, id, version."""
    ordered = sorted(agreements, key=lambda a: (a.kind, a.agreement_id, a.version))
    return [a.model_dump(mode="json") for a in ordered]


def effective_intervals(agreements: Iterable[A]) -> list[tuple[A, datetime, datetime | None]]:
    """Each version with its effective ``[start, end)``; ``end`` None = open; empty intervals are dropped."""
    by_id: dict[tuple[str, str], list[A]] = defaultdict(list)
    for a in agreements:
        by_id[(a.kind, a.agreement_id)].append(a)
    out = []
    for key in sorted(by_id):
        versions = sorted(by_id[key], key=lambda a: (a.valid_from, a.version))
        for i, a in enumerate(versions):
            start = day_start(a.valid_from)
            ends = [day_start(a.valid_until)] if a.valid_until else []
            if i + 1 < len(versions):
                ends.append(day_start(versions[i + 1].valid_from))
            end = min(ends) if ends else None
            if end is None or end > start:
                out.append((a, start, end))
    return out


def validate_agreements(agreements: Sequence[AnyAgreement]) -> list[str]:
    """Problems with a set of agreements (empty list = usable): duplicate versions, a version whose scope
    differs from its agreement's, and different agreements for the same scope in force at the same time."""
    problems: list[str] = []
    seen: dict[tuple[str, str, int], AnyAgreement] = {}
    scope_of: dict[tuple[str, str], tuple[str, ...]] = {}
    for a in agreements:
        key = (a.kind, a.agreement_id, a.version)
        if key in seen:
            problems.append(f"{a.kind} {a.ref} appears twice")
        seen[key] = a
        first = scope_of.setdefault((a.kind, a.agreement_id), a.scope())
        if first != a.scope():
            problems.append(f"{a.kind} {a.ref} changes scope {first} -> {a.scope()}; use a new agreement")
    by_scope: dict[tuple[str, ...], list[tuple[AnyAgreement, datetime, datetime | None]]] = defaultdict(list)
    for a, start, end in effective_intervals(agreements):
        by_scope[(a.kind, *a.scope())].append((a, start, end))
    for scope, items in sorted(by_scope.items()):
        items.sort(key=lambda t: t[1])
        for (a, _s, a_end), (b, b_start, _e) in itertools.pairwise(items):
            if a.agreement_id != b.agreement_id and (a_end is None or a_end > b_start):
                problems.append(f"{a.ref} and {b.ref} are both in force for {scope} on {b_start.date()}")
    return problems


def in_force(
    agreements: Iterable[AnyAgreement], kind: Kind, scope: tuple[str, ...], at: datetime
) -> AnyAgreement | None:
    """The version of ``kind`` for ``scope`` in force at instant ``at`` (aware), or None (scalar reference)."""
    for a, start, end in effective_intervals(x for x in agreements if x.kind == kind and x.scope() == scope):
        if start <= at and (end is None or at < end):
            return a
    return None


def check_change(
    existing: Sequence[AnyAgreement], proposed: AnyAgreement, closed_until: datetime | None
) -> list[str]:
    """Why ``proposed`` may not be stored next to ``existing`` versions (empty list = allowed). Pure.

    ``closed_until`` is the end of the last closed period (None: nothing closed). Rules: versions count up by
    one; a new version keeps the agreement's kind and scope and takes effect at or after ``closed_until``; a
    version already in force before ``closed_until`` is frozen: the only edit allowed is setting or moving
    its ``valid_until`` to an instant that is not inside a closed period.
    """
    same = [a for a in existing if a.agreement_id == proposed.agreement_id and a.kind == proposed.kind]
    others = [a for a in existing if a.agreement_id == proposed.agreement_id and a.kind != proposed.kind]
    problems: list[str] = []
    if others:
        problems.append(f"{proposed.agreement_id} is already a {others[0].kind} agreement")

    def inside_closed(day: date | None) -> bool:
        return closed_until is not None and day is not None and day_start(day) < closed_until

    current = {a.version: a for a in same}
    old = current.get(proposed.version)
    if old is not None:
        if old == proposed:
            return problems
        frozen = inside_closed(old.valid_from)
        if frozen:
            allowed = old.model_copy(update={"valid_until": proposed.valid_until}) == proposed
            if not allowed or inside_closed(proposed.valid_until) or inside_closed(old.valid_until):
                problems.append(
                    f"{old.ref} was in force in a closed period (before {closed_until:%Y-%m-%d}); "
                    f"it cannot be edited, publish version {max(current) + 1} from an open period instead"
                )
            return problems
    else:
        expected = max(current, default=0) + 1
        if proposed.version != expected:
            problems.append(
                f"next version of {proposed.agreement_id} must be {expected}, not {proposed.version}"
            )
    if same and same[0].scope() != proposed.scope():
        problems.append(f"{proposed.ref} changes scope {same[0].scope()} -> {proposed.scope()}")
    if inside_closed(proposed.valid_from):
        problems.append(
            f"{proposed.ref} would take effect on {proposed.valid_from}, inside a closed period "
            f"(closed until {closed_until:%Y-%m-%d}); closed periods are never rewritten"
        )
    if inside_closed(proposed.valid_until):
        problems.append(f"{proposed.ref} would end on {proposed.valid_until}, inside a closed period")
    return problems


class AgreementBook:
    """A validated, immutable set of agreements: what the split reads. Raises ValueError if inconsistent."""

    def __init__(self, agreements: Iterable[AnyAgreement]):
        items = tuple(sorted(agreements, key=lambda a: (a.kind, a.agreement_id, a.version)))
        problems = validate_agreements(items)
        if problems:
            raise ValueError("inconsistent agreements: " + "; ".join(problems))
        self.agreements: tuple[AnyAgreement, ...] = items
        self._intervals: dict[str, tuple[tuple[AnyAgreement, datetime, datetime | None], ...]] = {}
        self._derived: dict[str, Any] = {}

    @overload
    def intervals(
        self, kind: Literal["roaming"]
    ) -> Sequence[tuple[RoamingAgreement, datetime, datetime | None]]: ...
    @overload
    def intervals(
        self, kind: Literal["hub_fee"]
    ) -> Sequence[tuple[HubFeeAgreement, datetime, datetime | None]]: ...
    @overload
    def intervals(
        self, kind: Literal["site_host"]
    ) -> Sequence[tuple[SiteHostAgreement, datetime, datetime | None]]: ...
    @overload
    def intervals(self, kind: Kind) -> Sequence[tuple[AnyAgreement, datetime, datetime | None]]: ...
    def intervals(self, kind: Kind) -> Sequence[tuple[AnyAgreement, datetime, datetime | None]]:
        """The versions of one kind with their effective ``[start, end)`` (see :func:`effective_intervals`);
        computed once per kind (the book is immutable; a chunked split asks for them once per chunk)."""
        if kind not in self._intervals:
            self._intervals[kind] = tuple(effective_intervals(a for a in self.agreements if a.kind == kind))
        return self._intervals[kind]

    def derived(self, key: str, build: Callable[[], T]) -> T:
        """``build()``, computed once per ``key`` for this book (the split's parameter tables: the book is
        immutable, and a chunked split would otherwise rebuild them for every chunk)."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def __len__(self) -> int:
        return len(self.agreements)
