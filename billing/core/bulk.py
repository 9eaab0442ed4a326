"""Monthly invoices in bulk: many fleets' :func:`~billing.core.invoices.monthly_invoice` at once, vectorised.

The same documents as the core, to the byte of their stored JSON (``billing.store.codec.to_json`` then
``json.dumps``), from a columnar input instead of :class:`~billing.core.lines.PricedCdr` objects: a
:class:`CdrTable` (one row per CDR, one per component, numpy arrays, amounts as int64 minor units of the
currency) and one :class:`InvoiceHead` per invoice (series, number, dates, parties, terms, treatment; the
number already allocated, gap-free, by the caller). It exists because building the core's frozen, validated
objects costs ~0.1 ms per CDR, too slow for 10 million CDRs a month (docs/benchmarks.md).

What is the core's, and what is done here:

* the lines: one per priced component, in the CDR's order, with the CDR's own net; a min/max adjustment
  split over the CDR's (category, rate) classes with :func:`kernel.money.allocate` (called per adjustment,
  exactly as :func:`~billing.core.lines.cdr_lines` does); a credit CDR's lines negated; every CDR's lines
  grouped (driver, vehicle), each group in session order (start, then CDR id);
* the category of a line is :func:`~billing.core.vat.classify`'s, the breakdown per category and rate is
  built with the core's :class:`~billing.core.documents.VatBreakdown` and
  :func:`~billing.core.en16931.category_tax` (BR-CO-17) over integer sums, the totals are the core's
  :class:`~billing.core.documents.Totals`;
* what the core would refuse is refused with :class:`~billing.core.documents.DocumentError`: components
  that do not add up to the CDR's total, a credit CDR that names no CDR, an invoice without lines, in two
  currencies or below zero, a standard-rated line without the seller's VAT id, reverse charge without both.

Texts (ids, quantities and unit prices as ``str(Decimal)``, instants as ``isoformat()``) come as
:class:`Codes` (an index per row into distinct values), so each distinct text is JSON-encoded once, and the
lines' JSON is assembled column by column by Arrow (:mod:`billing.core.arrow_text`), never per line in Python.
A document is made in two steps: :func:`bodies` (lines, VAT breakdown, totals; all the work) then
:func:`stamp` (the header, with the number), so a batch can be built before its numbers are taken under its
counters' locks (:mod:`billing.store.monthly_bulk`). ``tests/billing/test_billing_bulk.py`` holds the bulk path
to the core on generated months.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import cached_property, lru_cache
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from billing.core.arrow_text import joined, json_texts, spans, taken, texts
from billing.core.documents import (
    DocumentError,
    Identity,
    Invoice,
    PaymentTerms,
    Totals,
    Unit,
    VatBreakdown,
    VatCategory,
)
from billing.core.en16931 import ZERO, category_tax, invoice_currency, total
from billing.core.lines import LABELS, UNITS, CdrComponent, Dimension, PricedCdr
from billing.core.vat import VatTreatment, classify, exemption_reason, notes
from kernel.money import allocate, minor_units

DIMENSIONS = tuple(Dimension)
"""Component dimension codes: ``DIMENSIONS[code]``."""
_ADJ = DIMENSIONS.index(Dimension.ADJUSTMENT)
_ORDER = {c: i for i, c in enumerate(VatCategory)}
_I64 = np.int64
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK_LINES = 400_000
"""About how many lines :func:`render` turns into JSON at a time (bounds its memory)."""


@dataclass(frozen=True)
class Codes:
    """A column of texts (or other values) as ``codes`` (int64, one per row, -1 for None) into ``values``."""

    codes: np.ndarray
    values: Sequence[Any]

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes, dtype=_I64)
        object.__setattr__(self, "codes", codes)
        if codes.size and (codes.min() < -1 or codes.max() >= len(self.values)):
            raise DocumentError("a code points outside its values")

    @staticmethod
    def of(items: Sequence[Any]) -> Codes:
        """The codes of ``items`` (None is -1), distinct values in order of first appearance."""
        index: dict[Any, int] = {}
        codes = [-1 if v is None else index.setdefault(v, len(index)) for v in items]
        return Codes(np.array(codes, dtype=_I64), tuple(index))

    def __len__(self) -> int:
        return len(self.codes)

    def at(self, row: int) -> Any:
        code = int(self.codes[row])
        return None if code < 0 else self.values[code]

    @cached_property
    def json(self) -> pa.Array:
        """The JSON of each value (``json.dumps``'), and ``null`` last (code -1): made once, as Arrow texts."""
        return json_texts([*self.values, None])

    @cached_property
    def texts(self) -> pa.Array:
        """The values (texts) and a null last (code -1), as Arrow texts."""
        return texts([*self.values, None])


@dataclass(frozen=True)
class CdrTable:
    """CDRs in columns: ``invoice`` (the index of the :class:`InvoiceHead` the CDR is on), the CDR's texts,
    ``start_us`` / ``end_us`` (the instants in µs since the epoch, for ordering) next to their ISO texts,
    ``total_excl`` (minor units), ``is_credit``; components in columns, ``comp_cdr`` the CDR row each belongs
    to (a CDR's components in their order), ``comp_dimension`` a code of :data:`DIMENSIONS`, ``comp_net``
    minor units, ``comp_vat`` codes into tariff VAT rates (Decimal, or None: no VAT applicable),
    ``comp_net_text`` the nets' texts where they are not written at the currency's decimals (an engine's
    ``0``; None: all are)."""

    invoice: np.ndarray
    cdr_id: Codes
    session_ref: Codes
    signed_data_ref: Codes
    location: Codes
    credit_of: Codes
    group: Codes
    currency: Codes
    start: Codes
    end: Codes
    start_us: np.ndarray
    end_us: np.ndarray
    total_excl: np.ndarray
    is_credit: np.ndarray
    comp_cdr: np.ndarray
    comp_dimension: np.ndarray
    comp_quantity: Codes
    comp_unit_price: Codes
    comp_net: np.ndarray
    comp_vat: Codes
    comp_net_text: Codes | None = None

    @property
    def n_cdrs(self) -> int:
        return len(self.invoice)


@dataclass(frozen=True, slots=True)
class InvoiceHead:
    """What one monthly invoice takes besides its CDRs (the arguments of ``monthly_invoice``); ``supply`` is
    its supply period's start and end as ISO texts (``monthly_invoice``'s ``supply_period``, e.g. the month
    widened to its CDRs; None: the span of its CDRs)."""

    series: str
    number: str
    issue_date: date
    seller: Identity
    buyer: Identity
    terms: PaymentTerms
    treatment: VatTreatment
    supply: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class BulkBody:
    """One invoice of the bulk path but for its number: its head's index, its figures, its supply period
    (ISO texts) and its lines' JSON (between the list's brackets); :func:`stamp` makes it a
    :class:`BulkInvoice`."""

    index: int
    currency: str
    n_lines: int
    breakdown: tuple[VatBreakdown, ...]
    totals: Totals
    supply: tuple[str, str]
    lines: str


@dataclass(frozen=True, slots=True)
class BulkInvoice:
    """One invoice of the bulk path: its head's index, its figures and its stored JSON (``document``)."""

    index: int
    number: str
    currency: str
    n_lines: int
    breakdown: tuple[VatBreakdown, ...]
    totals: Totals
    document: str


# --- from PricedCdr objects and back (tests, samples) ------------------------------------------------------


def table_of(months: Sequence[Sequence[PricedCdr]]) -> CdrTable:
    """The :class:`CdrTable` of ``months`` (invoice ``i`` gets the CDRs ``months[i]``, in that order)."""
    cdrs = [(i, c) for i, month in enumerate(months) for c in month]
    comps = [(r, k) for r, (_, c) in enumerate(cdrs) for k in c.components]

    def minor(amount: Decimal, currency: str) -> int:
        value = amount.scaleb(minor_units(currency))
        if value != value.to_integral_value():
            raise DocumentError(f"{amount} is not written as a {currency} amount of the bulk path")
        return int(value)

    def us(instant: datetime) -> int:
        return (instant - EPOCH) // timedelta(microseconds=1)

    def text(value: Any) -> Any:
        return None if value is None else str(value)

    return CdrTable(
        invoice=np.array([i for i, _ in cdrs], dtype=_I64),
        cdr_id=Codes.of([c.cdr_id for _, c in cdrs]),
        session_ref=Codes.of([c.session_ref for _, c in cdrs]),
        signed_data_ref=Codes.of([c.signed_data_ref for _, c in cdrs]),
        location=Codes.of([c.location for _, c in cdrs]),
        credit_of=Codes.of([c.credit_of for _, c in cdrs]),
        group=Codes.of([c.group for _, c in cdrs]),
        currency=Codes.of([c.currency for _, c in cdrs]),
        start=Codes.of([c.start.isoformat() for _, c in cdrs]),
        end=Codes.of([c.end.isoformat() for _, c in cdrs]),
        start_us=np.array([us(c.start) for _, c in cdrs], dtype=_I64),
        end_us=np.array([us(c.end) for _, c in cdrs], dtype=_I64),
        total_excl=np.array([minor(c.total_excl, c.currency) for _, c in cdrs], dtype=_I64),
        is_credit=np.array([c.is_credit for _, c in cdrs], dtype=bool),
        comp_cdr=np.array([r for r, _ in comps], dtype=_I64),
        comp_dimension=np.array([DIMENSIONS.index(k.dimension) for _, k in comps], dtype=_I64),
        comp_quantity=Codes.of([str(k.quantity) for _, k in comps]),
        comp_unit_price=Codes.of([text(k.unit_price) for _, k in comps]),
        comp_net=np.array([minor(k.net, cdrs[r][1].currency) for r, k in comps], dtype=_I64),
        comp_vat=Codes.of([k.vat_rate for _, k in comps]),
        comp_net_text=Codes.of([str(k.net) for _, k in comps]),
    )


def priced_cdrs(table: CdrTable, invoice: int) -> list[PricedCdr]:
    """The :class:`PricedCdr` objects of one invoice's CDRs, in the table's order (for the core path; without
    ``total_incl``, which a monthly invoice does not read)."""
    rows = np.flatnonzero(table.invoice == invoice)
    order = np.argsort(table.comp_cdr, kind="stable")
    starts = np.searchsorted(table.comp_cdr[order], rows)
    ends = np.searchsorted(table.comp_cdr[order], rows, side="right")
    out = []
    for row, lo, hi in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
        currency = table.currency.at(row)
        places = minor_units(currency)
        components = []
        for k in order[lo:hi].tolist():
            up = table.comp_unit_price.at(k)
            components.append(
                CdrComponent(
                    DIMENSIONS[int(table.comp_dimension[k])],
                    Decimal(table.comp_quantity.at(k)),
                    Decimal(int(table.comp_net[k])).scaleb(-places)
                    if table.comp_net_text is None
                    else Decimal(table.comp_net_text.at(k)),
                    table.comp_vat.at(k),
                    None if up is None else Decimal(up),
                )
            )
        out.append(
            PricedCdr(
                cdr_id=table.cdr_id.at(row),
                session_ref=table.session_ref.at(row),
                currency=currency,
                start=datetime.fromisoformat(table.start.at(row)),
                end=datetime.fromisoformat(table.end.at(row)),
                total_excl=Decimal(int(table.total_excl[row])).scaleb(-places),
                components=tuple(components),
                is_credit=bool(table.is_credit[row]),
                credit_of=table.credit_of.at(row),
                signed_data_ref=table.signed_data_ref.at(row),
                location=table.location.at(row) or "",
                group=table.group.at(row) or (),
            )
        )
    return out


# --- the vectorised lines ------------------------------------------------------------------------------------


def _ranks(values: Sequence[Any], strings: bool) -> np.ndarray:
    """rank[code] = the position of values[code] in sorted order (Python's order; numpy's for str)."""
    if strings and not any("\x00" in v for v in values):  # numpy's str order is Python's but for NULs
        order = np.argsort(np.array(values, dtype=str), kind="stable")
    else:
        order = np.array(sorted(range(len(values)), key=values.__getitem__), dtype=_I64)
    rank = np.empty(len(values), dtype=_I64)
    rank[order] = np.arange(len(values), dtype=_I64)
    return rank


def _json_at(column: Codes, rows: np.ndarray, encode: bool = True) -> pa.Array:
    """The JSON (or, ``encode=False``, the plain text) of ``column`` at ``rows``."""
    codes = column.codes[rows]
    return taken(column.json if encode else column.texts, np.where(codes < 0, len(column.values), codes))


def _amounts(minor: np.ndarray, places: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The texts of the amounts (minor units, decimals) as ``str(Decimal)`` writes them (``-12.34``,
    ``0.05``), each distinct one once, and each amount's index into them."""
    used, inverse = np.unique(minor * 3 + places, return_inverse=True)
    digits = used % 3
    amounts = [
        str(Decimal(int(m)).scaleb(-int(d)))
        for m, d in zip(((used - digits) // 3).tolist(), digits.tolist(), strict=True)
    ]
    return amounts, inverse.reshape(-1).astype(_I64)


@dataclass(frozen=True)
class Prepared:
    """The lines of every invoice, sorted (invoice, group, start, CDR id, position), with their texts' codes;
    ``bounds[i]:bounds[i + 1]`` are invoice ``i``'s lines. Made once, rendered in parts."""

    heads: Sequence[InvoiceHead]
    table: CdrTable
    line_cdr: np.ndarray
    line_suffix: np.ndarray
    suffixes: tuple[str, ...]
    line_dimension: np.ndarray
    line_quantity: np.ndarray
    line_unit_price: np.ndarray
    line_net: np.ndarray
    line_class: np.ndarray
    line_negative: np.ndarray
    line_comp: np.ndarray
    classes: tuple[tuple[VatCategory, Decimal], ...]
    bounds: np.ndarray
    currency_of: np.ndarray
    first_start: np.ndarray
    last_end: np.ndarray


def _check(table: CdrTable, n_invoices: int) -> None:
    n = table.n_cdrs
    if n and (table.invoice.min() < 0 or table.invoice.max() >= n_invoices):
        raise DocumentError("a CDR is on an invoice that has no head")
    if (table.currency.codes < 0).any() or (table.cdr_id.codes < 0).any():
        raise DocumentError("every CDR has an id and a currency")
    comp_sum = pd.Series(table.comp_net).groupby(table.comp_cdr).sum().reindex(range(n), fill_value=0)
    bad = np.flatnonzero(comp_sum.to_numpy() != table.total_excl)
    if bad.size:
        raise DocumentError(
            f"CDR {table.cdr_id.at(int(bad[0]))}: its components do not add up to its total excl. VAT"
        )
    credit_named = table.credit_of.codes >= 0
    bad = np.flatnonzero(table.is_credit != credit_named)
    if bad.size:
        raise DocumentError(
            f"CDR {table.cdr_id.at(int(bad[0]))}: a credit CDR, and only one, names the CDR it credits"
        )
    bad = np.flatnonzero(table.is_credit & (table.total_excl > 0))
    if bad.size:
        raise DocumentError(f"CDR {table.cdr_id.at(int(bad[0]))}: a credit CDR's total cannot be positive")
    if (table.end_us < table.start_us).any():
        raise DocumentError("a supply period ends before it starts (BR-29 / BR-30)")
    adjustment = table.comp_dimension == _ADJ
    if ((table.comp_unit_price.codes < 0) != adjustment).any():
        raise DocumentError("a priced component has a unit price, an adjustment none")
    for values, what in (
        (table.comp_quantity.values, "quantity"),
        (table.comp_unit_price.values, "unit price"),
    ):
        if any(Decimal(v) < 0 for v in values):
            raise DocumentError(f"a billed {what} is never negative")
    for rate in table.comp_vat.values:
        if rate is not None and rate < 0:
            raise DocumentError(f"VAT rate {rate} is negative")
    for currency in table.currency.values:
        if invoice_currency(currency) != currency:
            raise DocumentError(f"currency {currency!r}: give the ISO 4217 code")


def _which(heads: Sequence[InvoiceHead], index: int) -> str:
    """How an error names invoice ``index``: its number, or before it has one, its place and buyer."""
    head = heads[index]
    return head.number or f"{index + 1} of {len(heads)} (to {head.buyer.legal_name})"


def prepare(table: CdrTable, heads: Sequence[InvoiceHead]) -> Prepared:
    """Every invoice's lines, ordered and classified (vectorised); DocumentError where the core refuses."""
    _check(table, len(heads))
    n = table.n_cdrs
    # session order inside an invoice: group, start, CDR id (then the input order, as a stable sort keeps it)
    group_rank = _ranks(table.group.values, strings=False)[table.group.codes] if n else np.zeros(0, _I64)
    id_rank = _ranks(table.cdr_id.values, strings=True)[table.cdr_id.codes] if n else np.zeros(0, _I64)
    cdr_order = np.lexsort((np.arange(n), id_rank, table.start_us, group_rank, table.invoice))
    cdr_pos = np.empty(n, dtype=_I64)
    cdr_pos[cdr_order] = np.arange(n, dtype=_I64)

    # the VAT class of each (treatment, tariff rate)
    treatments = list(dict.fromkeys(h.treatment for h in heads))
    t_of_invoice = np.array([treatments.index(h.treatment) for h in heads], dtype=_I64)
    rates = [*table.comp_vat.values, None]
    class_index: dict[tuple[VatCategory, Decimal], int] = {}
    grid = np.empty((len(treatments), len(rates)), dtype=_I64)
    for t, treatment in enumerate(treatments):
        for r, rate in enumerate(rates):
            grid[t, r] = class_index.setdefault(classify(rate, treatment), len(class_index))
    classes = tuple(class_index)

    comp = np.arange(len(table.comp_cdr), dtype=_I64)
    comp = comp[np.argsort(table.comp_cdr, kind="stable")]
    c_cdr = table.comp_cdr[comp]
    c_dim = table.comp_dimension[comp]
    c_treatment = t_of_invoice[table.invoice[c_cdr]] if len(c_cdr) else np.zeros(0, _I64)
    c_class = grid[c_treatment, table.comp_vat.codes[comp]]
    priced = c_dim != _ADJ
    p_cdr = c_cdr[priced]
    p_comp = comp[priced]
    # position of each priced component in its CDR (1-based suffix)
    first = np.r_[True, p_cdr[1:] != p_cdr[:-1]] if p_cdr.size else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, p_cdr.size])
    p_pos = np.arange(p_cdr.size, dtype=_I64) - np.repeat(starts, counts)
    max_pos = int(p_pos.max()) + 1 if p_pos.size else 0
    suffixes = [str(k + 1) for k in range(max_pos)]

    lines: dict[str, list[np.ndarray]] = {
        k: [] for k in ("cdr", "suffix", "dim", "qty", "up", "net", "cls", "key", "comp")
    }

    def add(**columns: np.ndarray) -> None:
        for k, v in columns.items():
            lines[k].append(np.asarray(v, dtype=_I64))

    add(
        cdr=p_cdr,
        suffix=p_pos,
        dim=c_dim[priced],
        qty=table.comp_quantity.codes[p_comp],
        up=table.comp_unit_price.codes[p_comp],
        net=table.comp_net[p_comp],
        cls=c_class[priced],
        key=p_pos,
        comp=p_comp,
    )

    # adjustments: per adjustment, kernel.money.allocate over the CDR's classes, as cdr_lines does
    adj = np.flatnonzero(~priced)
    if adj.size:
        p_starts = np.searchsorted(p_cdr, c_cdr[adj])
        p_ends = np.searchsorted(p_cdr, c_cdr[adj], side="right")
        adj_lines: list[tuple[int, int, int, int, int]] = []  # cdr, suffix code, net, class, key
        seen: dict[int, int] = {}
        extra: dict[str, int] = {}
        for a, lo, hi in zip(adj.tolist(), p_starts.tolist(), p_ends.tolist(), strict=True):
            cdr = int(c_cdr[a])
            m = seen.get(cdr, 0)
            seen[cdr] = m + 1
            currency = table.currency.at(cdr)
            places = minor_units(currency)
            net = int(table.comp_net[comp[a]])
            weights: dict[int, int] = {}
            for j in range(lo, hi):
                k = int(lines["cls"][0][j])
                weights[k] = weights.get(k, 0) + int(lines["net"][0][j])
            if not weights:
                cls = int(grid[int(c_treatment[a]), len(rates) - 1])
                suffix = f"a{m + 1}"
                adj_lines.append((cdr, extra.setdefault(suffix, max_pos + len(extra)), net, cls, 10**6 + m))
                continue
            parts = allocate(
                Decimal(net).scaleb(-places),
                [abs(Decimal(w).scaleb(-places)) for w in weights.values()],
                currency,
            )
            for j, (cls, part) in enumerate(zip(weights, parts, strict=True)):
                if part or len(weights) == 1:
                    suffix = f"a{m + 1}.{j + 1}"
                    code = extra.setdefault(suffix, max_pos + len(extra))
                    adj_lines.append((cdr, code, int(part.scaleb(places)), cls, 10**6 + m * 10**4 + j))
        suffixes += list(extra)
        if adj_lines:
            arr = np.array(adj_lines, dtype=_I64)
            add(
                cdr=arr[:, 0],
                suffix=arr[:, 1],
                dim=np.full(len(arr), _ADJ),
                qty=np.full(len(arr), -1),
                up=np.full(len(arr), -1),
                net=arr[:, 2],
                cls=arr[:, 3],
                key=arr[:, 4],
                comp=np.full(len(arr), -1),
            )

    col = {k: np.concatenate(v) if v else np.zeros(0, _I64) for k, v in lines.items()}
    order = np.lexsort((col["key"], cdr_pos[col["cdr"]]))
    col = {k: v[order] for k, v in col.items()}
    line_cdr = col["cdr"]
    line_invoice = table.invoice[line_cdr]
    counts = np.bincount(line_invoice, minlength=len(heads))
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise DocumentError(f"invoice {_which(heads, int(empty[0]))}: nothing to invoice: no lines (BR-16)")
    bounds = np.r_[0, np.cumsum(counts)]
    negative = (col["net"] < 0) | ((col["net"] == 0) & table.is_credit[line_cdr])

    # one currency per invoice
    cur = table.currency.codes[line_cdr]
    lo_cur = np.minimum.reduceat(cur, bounds[:-1])
    hi_cur = np.maximum.reduceat(cur, bounds[:-1])
    mixed = np.flatnonzero(lo_cur != hi_cur)
    if mixed.size:
        raise DocumentError(
            f"invoice {_which(heads, int(mixed[0]))}: lines in 2 currencies; one document per currency"
        )
    # the supply period: the first earliest start and the first latest end, in line order
    frame = pd.DataFrame({"inv": line_invoice, "s": table.start_us[line_cdr], "e": table.end_us[line_cdr]})
    first_start = line_cdr[frame.groupby("inv", sort=True)["s"].idxmin().to_numpy()]
    last_end = line_cdr[frame.groupby("inv", sort=True)["e"].idxmax().to_numpy()]
    return Prepared(
        heads=heads,
        table=table,
        line_cdr=line_cdr,
        line_suffix=col["suffix"],
        suffixes=tuple(suffixes),
        line_dimension=col["dim"],
        line_quantity=col["qty"],
        line_unit_price=col["up"],
        line_net=col["net"],
        line_class=col["cls"],
        line_negative=negative,
        line_comp=col["comp"],
        classes=classes,
        bounds=bounds,
        currency_of=lo_cur,
        first_start=first_start,
        last_end=last_end,
    )


# --- the documents ---------------------------------------------------------------------------------------------


_NAMES: dict[type, tuple[str, ...] | None] = {}


def _names(kind: type) -> tuple[str, ...] | None:
    if kind not in _NAMES:
        _NAMES[kind] = tuple(f.name for f in fields(kind)) if is_dataclass(kind) else None
    return _NAMES[kind]


def _data(value: Any) -> Any:
    """billing.store.codec.to_json's rules, for the heads' parts (identities, terms)."""
    names = _names(type(value))
    if names is not None:
        return {name: _data(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_data(v) for v in value]
    return value


@lru_cache(maxsize=4096)
def _party(who: Identity) -> Any:
    return _data(who)


_INVOICE_FIELDS = tuple((f.name, _data(f.default)) for f in fields(Invoice))
"""The stored invoice's keys in order, with the default of those a monthly invoice leaves as they are."""


def _check_parties(head: InvoiceHead, categories: set[VatCategory]) -> None:
    seller, buyer = head.seller, head.buyer
    if VatCategory.STANDARD in categories and not (seller.vat_id or seller.registration_id):
        raise DocumentError("a standard-rated supply needs the seller's VAT id (BR-S-02)")
    if VatCategory.REVERSE_CHARGE in categories and not (seller.vat_id and buyer.vat_id):
        raise DocumentError("reverse charge needs the seller's and the buyer's VAT id (BR-AE-02)")


def render(prepared: Prepared, invoices: range | None = None) -> Iterator[BulkInvoice]:
    """The invoices ``invoices`` (head indexes; all if None) of ``prepared``, in that order, each with its
    stored JSON (:func:`bodies`, each stamped with its head by :func:`stamp`)."""
    for body in bodies(prepared, invoices):
        yield stamp(body, prepared.heads[body.index])


def bodies(prepared: Prepared, invoices: range | None = None) -> Iterator[BulkBody]:
    """The bodies of the invoices ``invoices`` (head indexes; all if None) of ``prepared``, in that order,
    about :data:`CHUNK_LINES` lines at a time; DocumentError for one the core refuses (a total below zero, a
    party without its VAT id)."""
    invoices = range(len(prepared.heads)) if invoices is None else invoices
    bounds = prepared.bounds
    start = invoices.start
    while start < invoices.stop:
        stop = int(np.searchsorted(bounds, bounds[start] + CHUNK_LINES, side="right")) - 1
        stop = min(max(stop, start + 1), invoices.stop)
        yield from _bodies(prepared, range(start, stop))
        start = stop


def _bodies(p: Prepared, invoices: range) -> Iterator[BulkBody]:
    t = p.table
    lo, hi = int(p.bounds[invoices.start]), int(p.bounds[invoices.stop])
    sl = slice(lo, hi)
    line_cdr = p.line_cdr[sl]
    cdrs, cdr_inverse = np.unique(line_cdr, return_inverse=True)
    cdr_inverse = cdr_inverse.reshape(-1)
    places_of = np.array([minor_units(c) for c in t.currency.values], dtype=_I64)
    line_places = places_of[t.currency.codes[line_cdr]]

    # per CDR: the open line id and the tail of its lines (cdr_id .. credits_line)
    ids = _json_at(t.cdr_id, cdrs)
    opens = taken(pc.utf8_slice_codeunits(ids, 0, -1), cdr_inverse)
    tails = joined(
        [
            '"cdr_id": ',
            ids,
            ', "session_ref": ',
            _json_at(t.session_ref, cdrs),
            ', "signed_data_ref": ',
            _json_at(t.signed_data_ref, cdrs),
            ', "supply": {"start": "',
            _json_at(t.start, cdrs, encode=False),
            '", "end": "',
            _json_at(t.end, cdrs, encode=False),
            '"}, "group": ',
            _json_at(t.group, cdrs),
            ', "credits_line": null}',
        ]
    )
    del ids

    # per line: description, quantity, unit, unit price, net, VAT part
    dims = p.line_dimension[sl]
    loc_codes = t.location.codes[line_cdr]
    n_loc = len(t.location.values) + 1
    locations = [*t.location.values, ""]
    desc_key = dims * n_loc + np.where(loc_codes < 0, n_loc - 1, loc_codes)
    used, desc_index = np.unique(desc_key, return_inverse=True)
    desc_index = desc_index.reshape(-1)
    plain = [
        LABELS[DIMENSIONS[k // n_loc]] + (f", {locations[k % n_loc]}" if locations[k % n_loc] else "")
        for k in used.tolist()
    ]
    descriptions = [encode_basestring_ascii(s) for s in plain]
    for j in np.flatnonzero(t.is_credit[line_cdr]).tolist():
        credited = t.credit_of.at(int(line_cdr[j]))
        text = f"Correction (credit of CDR {credited}): {plain[int(desc_index[j])]}"
        desc_index[j] = len(descriptions)
        descriptions.append(encode_basestring_ascii(text))
    units = [UNITS[d].value if d in UNITS else Unit.ONE.value for d in DIMENSIONS]

    net = p.line_net[sl]
    negative = p.line_negative[sl]
    net_texts, net_index = _amounts(net, line_places)
    if t.comp_net_text is not None:
        comp = p.line_comp[sl]
        given = np.flatnonzero(comp >= 0)
        g_used, g_inverse = np.unique(t.comp_net_text.codes[comp[given]], return_inverse=True)
        net_index[given] = len(net_texts) + g_inverse.reshape(-1)
        net_texts += [t.comp_net_text.values[c] for c in g_used.tolist()]
    q_used, q_inverse = np.unique(p.line_quantity[sl], return_inverse=True)
    q_plain = [t.comp_quantity.values[c] if c >= 0 else "1" for c in q_used.tolist()]
    qty_index = q_inverse.reshape(-1) + np.where(negative, len(q_plain), 0)
    u_used, u_inverse = np.unique(p.line_unit_price[sl], return_inverse=True)
    prices = [t.comp_unit_price.values[c] if c >= 0 else "" for c in u_used.tolist()]
    price_index = u_inverse.reshape(-1)
    adjustment = np.flatnonzero(dims == _ADJ)
    if adjustment.size:
        a_texts, a_index = _amounts(np.abs(net[adjustment]), line_places[adjustment])
        price_index[adjustment] = len(prices) + a_index
        prices += a_texts
    cur_text = [encode_basestring_ascii(c) for c in t.currency.values]
    n_cls = len(p.classes)
    vat_parts = [
        f'"currency": {cur_text[k // n_cls]}, "vat_category": "{p.classes[k % n_cls][0].value}", '
        f'"vat_rate": "{p.classes[k % n_cls][1]}", '
        for k in range(len(cur_text) * n_cls)
    ]
    # ", " after each line but an invoice's last
    counts = np.diff(p.bounds[invoices.start : invoices.stop + 1])
    last = np.cumsum(counts) - 1
    separator = np.ones(hi - lo, dtype=_I64)
    separator[last] = 0
    lines = joined(
        [
            '{"line_id": ',
            opens,
            ":",
            taken(p.suffixes or ("",), p.line_suffix[sl]),
            '", "description": ',
            taken(descriptions, desc_index),
            ', "quantity": "',
            taken([*q_plain, *("-" + q for q in q_plain)], qty_index),
            '", "unit": "',
            taken(units, dims),
            '", "unit_price": "',
            taken(prices, price_index),
            '", "net": "',
            taken(net_texts, net_index),
            '", ',
            taken(vat_parts, t.currency.codes[line_cdr] * n_cls + p.line_class[sl]),
            taken(tails, cdr_inverse),
            taken(("", ", "), separator),
        ]
    )
    del opens, tails
    text_of = iter(spans(lines, np.r_[0, last + 1]))
    del lines

    # per invoice and class: the taxable amount
    inv_local = np.repeat(np.arange(len(invoices), dtype=_I64), counts)
    taxable = pd.Series(net).groupby([inv_local, p.line_class[sl]]).sum()
    by_invoice: dict[int, list[tuple[int, int]]] = {}
    for (i, k), v in taxable.items():
        by_invoice.setdefault(int(i), []).append((int(k), int(v)))

    for local, index in enumerate(invoices):
        head = p.heads[index]
        currency = t.currency.values[int(p.currency_of[index])]
        places = minor_units(currency)
        keys = sorted(by_invoice[local], key=lambda kv: (_ORDER[p.classes[kv[0]][0]], p.classes[kv[0]][1]))
        vat = []
        for k, minor in keys:
            category, rate = p.classes[k]
            amount = total([Decimal(minor).scaleb(-places)], currency)
            vat.append(
                VatBreakdown(
                    category,
                    rate,
                    amount,
                    category_tax(amount, rate, currency),
                    currency,
                    exemption_reason(category, head.treatment),
                )
            )
        line_net = total([Decimal(sum(m for _, m in keys)).scaleb(-places)], currency)
        tax = total((b.tax for b in vat), currency)
        rounding = total([ZERO], currency)
        totals = Totals(
            line_net, line_net, tax, line_net + tax, rounding, line_net + tax + rounding, currency
        )
        if totals.tax_inclusive < 0:
            raise DocumentError("an invoice total below zero is a credit note, not an invoice")
        _check_parties(head, {b.category for b in vat})
        a, b = int(p.bounds[index]) - lo, int(p.bounds[index + 1]) - lo
        supply = (
            (t.start.at(int(p.first_start[index])), t.end.at(int(p.last_end[index])))
            if head.supply is None
            else head.supply
        )
        yield BulkBody(index, currency, b - a, tuple(vat), totals, supply, next(text_of))


def stamp(body: BulkBody, head: InvoiceHead) -> BulkInvoice:
    """``body``'s invoice with its stored JSON, numbered by ``head``: the head ``body`` was built with, or one
    that differs from it in its number only (the caller's to ensure)."""
    known = {
        "series": head.series,
        "number": head.number,
        "issue_date": head.issue_date.isoformat(),
        "supply_period": {"start": body.supply[0], "end": body.supply[1]},
        "seller": _party(head.seller),
        "buyer": _party(head.buyer),
        "currency": body.currency,
        "lines": None,
        "breakdown": _data(body.breakdown),
        "totals": _data(body.totals),
        "payment_terms": _data(head.terms),
        "due_date": head.terms.due_date(head.issue_date).isoformat(),
        "notes": list(notes(body.breakdown)),
    }
    document = {name: known.get(name, default) for name, default in _INVOICE_FIELDS}
    before, after = json.dumps(document).split('"lines": null', 1)
    text = "".join((before, '"lines": [', body.lines, "]", after))
    return BulkInvoice(
        body.index, head.number, body.currency, body.n_lines, body.breakdown, body.totals, text
    )


def monthly_bodies(table: CdrTable, heads: Sequence[InvoiceHead]) -> list[BulkBody]:
    """Every invoice of ``table`` but for its number (:func:`prepare` then :func:`bodies`); the heads'
    numbers are not read (a batch builds its bodies before its numbers are taken, then :func:`stamp` them)."""
    return list(bodies(prepare(table, heads)))


def monthly_invoices(table: CdrTable, heads: Sequence[InvoiceHead]) -> list[BulkInvoice]:
    """Every invoice of ``table``: :func:`prepare` then :func:`render`."""
    return list(render(prepare(table, heads)))
