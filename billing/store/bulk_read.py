"""A monthly batch's CDRs as columns: read on PostgreSQL with one ``COPY (SELECT ...) TO STDOUT`` decoded by Arrow.

:class:`CdrColumns` is what :mod:`billing.store.monthly_bulk` builds a batch's documents from: a
:class:`billing.core.bulk.CdrTable` whose ``invoice`` is still the billing account's id, and each CDR's row id
(for the ``billing_document_cdrs`` links).

:func:`read_copy` runs the batch's selection (the statement :mod:`billing.store.monthly_bulk` builds, every
bound value rendered as a literal) with the explanation's lines unnested beside each CDR (one CSV row per line,
``jsonb_array_elements ... WITH ORDINALITY``), so there is no JSON text per CDR and no Python object per row:
Arrow's CSV reader decodes the columns, each text column is dictionary-encoded (codes into its distinct
values), rows are sorted and selected as integer codes, and each distinct value is turned into what the row
loop of the SQLite path makes of it (``str(Decimal(text))``, minor units, the driver-and-vehicle group, ISO
instants) once. The CDRs and lines are taken in CDR id and line order.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from billing.core import bulk
from billing.core.documents import DocumentError
from billing.core.lines import Dimension
from kernel.money import minor_units

_DIMS = {d.value: i for i, d in enumerate(bulk.DIMENSIONS)}
_ADJ = bulk.DIMENSIONS.index(Dimension.ADJUSTMENT)
_NULL = "\\N"
CDR_FIELDS = (
    *("id", "uid", "is_credit", "currency", "start_us", "end_us", "total_excl", "session_ref", "signed"),
    *("original_uid", "location", "fleet_id", "driver", "visual", "contract", "vehicle"),
)
"""The columns the selection gives, in order, before the explanation's lines (``lines``: a JSONB array)."""
_NUMBERS = ("start_us", "end_us", "fleet_id")
"""The CDR's whole-number fields (empty on all but its first line's row)."""
_LINE_FIELDS = ("n", "kind", "dimension", "quantity", "unit_price", "vat", "amount")


@dataclass(frozen=True)
class CdrColumns:
    """A batch's CDRs: ``table`` (``invoice`` = the billing account's id) and ``db_id`` (each CDR's row id)."""

    table: bulk.CdrTable
    db_id: np.ndarray

    def accounts(self) -> set[int]:
        return set(np.unique(self.table.invoice).tolist())

    def without(self, accounts: set[int]) -> CdrColumns:
        """Without the CDRs (and their lines) of ``accounts``."""
        t = self.table
        keep = ~np.isin(t.invoice, np.array(sorted(accounts), dtype=np.int64))
        new_row = np.cumsum(keep) - 1
        comp = keep[t.comp_cdr]

        def rows(c: bulk.Codes) -> bulk.Codes:
            return bulk.Codes(c.codes[keep], c.values)

        def comps(c: bulk.Codes) -> bulk.Codes:
            return bulk.Codes(c.codes[comp], c.values)

        table = bulk.CdrTable(
            invoice=t.invoice[keep],
            cdr_id=rows(t.cdr_id),
            session_ref=rows(t.session_ref),
            signed_data_ref=rows(t.signed_data_ref),
            location=rows(t.location),
            credit_of=rows(t.credit_of),
            group=rows(t.group),
            currency=rows(t.currency),
            start=rows(t.start),
            end=rows(t.end),
            start_us=t.start_us[keep],
            end_us=t.end_us[keep],
            total_excl=t.total_excl[keep],
            is_credit=t.is_credit[keep],
            comp_cdr=new_row[t.comp_cdr[comp]],
            comp_dimension=t.comp_dimension[comp],
            comp_quantity=comps(t.comp_quantity),
            comp_unit_price=comps(t.comp_unit_price),
            comp_net=t.comp_net[comp],
            comp_vat=comps(t.comp_vat),
            comp_net_text=None if t.comp_net_text is None else comps(t.comp_net_text),
        )
        return CdrColumns(table, self.db_id[keep])

    def numbered(self, accounts: Sequence[int]) -> tuple[bulk.CdrTable, list[datetime], list[datetime]]:
        """The table with ``invoice`` the index of the CDR's account in ``accounts`` (all of them present),
        and each invoice's earliest start and latest end."""
        ids = np.array(accounts, dtype=np.int64)
        sorter = np.argsort(ids)
        invoice = sorter[np.searchsorted(ids, self.table.invoice, sorter=sorter)]
        n = len(ids)
        first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(first, invoice, self.table.start_us)
        np.maximum.at(last, invoice, self.table.end_us)
        us = timedelta(microseconds=1)
        return (
            replace(self.table, invoice=invoice.astype(np.int64)),
            [bulk.EPOCH + int(v) * us for v in first.tolist()],
            [bulk.EPOCH + int(v) * us for v in last.tolist()],
        )


def copy_query(selection_sql: str) -> str:
    """The query COPY runs: ``selection_sql`` (its columns :data:`CDR_FIELDS` then ``lines``) with each CDR's
    lines unnested beside it; a CDR's fields but its id only on its first line's row (the others' are empty:
    a quarter less to write and to parse)."""
    first = "e.n = 1 OR e.n IS NULL"
    fields = ", ".join(["s.id", *(f"CASE WHEN {first} THEN s.{f} END" for f in CDR_FIELDS[1:])])
    return (
        f"SELECT {fields}, e.n, e.l->>'kind', e.l->>'dimension', e.l->>'quantity', e.l->>'unit_price', "
        f"e.l->>'vat', e.l->>'amount_excl_vat' FROM ({selection_sql}) AS s "
        "LEFT JOIN LATERAL jsonb_array_elements(s.lines) WITH ORDINALITY AS e(l, n) ON true"
    )


async def read_copy(
    driver: Any,
    selection_sql: str,
    owners: dict[tuple[int, str], tuple[int, int]],
) -> tuple[CdrColumns, set[int]]:
    """The batch's CDRs from ``selection_sql`` on the asyncpg connection ``driver``; ``owners`` maps a CDR's
    (fleet, currency) to its account's (id, end of its month in µs since the epoch): a CDR of no owner, or
    ending at or after its account's month's end, is not the batch's. Also the accounts that have a line
    outside the scope of VAT."""
    out = io.BytesIO()
    await driver.copy_from_query(copy_query(selection_sql), output=out, format="csv", null=_NULL)
    out.seek(0)
    frame = parse(out)
    del out
    return _columns(frame, owners)


def parse(csv: io.BytesIO) -> pa.Table:
    """The COPY's CSV as an Arrow table, by Arrow's CSV reader (ten times pandas' own here: no Python object
    per field): the whole numbers as int64 (null but on a CDR's first row, see :func:`copy_query`), the rest
    as text; ``\\N`` is NULL, a quoted empty field the empty text."""
    names = [*CDR_FIELDS, *_LINE_FIELDS]
    whole = ("id", "n", *_NUMBERS)
    return pa_csv.read_csv(
        csv,
        read_options=pa_csv.ReadOptions(column_names=names),
        convert_options=pa_csv.ConvertOptions(
            column_types={n: pa.int64() if n in whole else pa.string() for n in names},
            null_values=[_NULL],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    ).combine_chunks()


@dataclass(frozen=True)
class _Coded:
    """A text column of the COPY as ``codes`` (int64 per row, -1 for NULL) into its distinct ``values``."""

    codes: np.ndarray
    values: list[Any]

    @staticmethod
    def of(column: pa.ChunkedArray | pa.Array) -> _Coded:
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        encoded = pc.dictionary_encode(column)
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        return _Coded(codes, encoded.dictionary.to_pylist())

    def at(self, rows: np.ndarray) -> _Coded:
        return _Coded(self.codes[rows], self.values)

    def code_of(self, value: Any) -> int:
        """The code of ``value`` (-2, matching no row, if no row has it)."""
        return self.values.index(value) if value in self.values else -2

    def first(self, mask: np.ndarray) -> Any:
        """The value of the first row of ``mask`` (None if there is none or it is NULL)."""
        rows = np.flatnonzero(mask)
        return None if not rows.size or self.codes[rows[0]] < 0 else self.values[self.codes[rows[0]]]

    def codes_for(
        self, convert: Callable[[list[Any]], list[Any]] | None = None, null: Any = None
    ) -> bulk.Codes:
        """The :class:`~billing.core.bulk.Codes` of the rows, the values the rows use converted by
        ``convert`` (all at once: a list of values to the list of what they become; a value converted to
        None is -1); NULL is ``null`` converted, when given, else -1."""
        remap = np.full(len(self.values) + 1, -1, dtype=np.int64)
        used = np.flatnonzero(np.bincount(self.codes[self.codes >= 0], minlength=len(self.values)))
        if convert is None and null is None:  # the values are distinct already
            remap[used] = np.arange(len(used), dtype=np.int64)
            return bulk.Codes(remap[self.codes], tuple(self.values[c] for c in used.tolist()))
        originals = [self.values[c] for c in used.tolist()]
        with_null = null is not None and bool((self.codes < 0).any())
        values = [*originals, null] if with_null else originals
        converted = values if convert is None else convert(values)
        index: dict[Any, int] = {}
        at = [*used.tolist(), -1]
        for c, value in zip(at, converted, strict=False):
            if value is not None:
                remap[c] = index.setdefault(value, len(index))
        return bulk.Codes(remap[self.codes], tuple(index))


_CANONICAL = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
"""Decimal texts that ``str(Decimal(text))`` writes back unchanged (but those below 10**-6, see _decimals)."""


def _decimals(values: list[Any], zero: str | None = None) -> list[str]:
    """``str(Decimal(v))`` of each of ``values`` (DocumentError for one that is no number); with ``zero``,
    every zero (and the empty text) is ``zero``. A text already written so is taken as it is, checked by two
    regular expressions over all of them; the others are converted one by one."""
    column = pa.array(values, type=pa.string())
    plain = pc.and_(
        pc.match_substring_regex(column, _CANONICAL),
        pc.invert(pc.match_substring_regex(column, r"^-?0\.0{6}")),  # 1E-7: exponent notation
    )
    if zero is not None:
        plain = pc.and_(plain, pc.invert(pc.match_substring_regex(column, r"^-?0(\.0*)?$")))
    out = list(values)
    for i in np.flatnonzero(~pc.fill_null(plain, False).to_numpy(zero_copy_only=False)).tolist():
        value = values[i]
        if zero is None:
            out[i] = str(_dec(value))
        else:
            number = _dec(value) if value != "" else Decimal(0)
            out[i] = str(number) if number else zero
    return out


def _key(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the rows' combinations of ``codes`` (each -1 for none), and the first row of each
    combination: a factorize over several columns without building their tuples."""
    key = np.zeros(len(codes[0]), dtype=np.int64)
    for c in codes:
        key = key * (int(c.max(initial=-1)) + 2) + (c.astype(np.int64) + 1)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), first


def _dedup(codes: np.ndarray, values: Sequence[Hashable | None]) -> bulk.Codes:
    """Codes into distinct values (several codes converted to one value become one; None becomes -1)."""
    index: dict[Any, int] = {}
    remap = np.array(
        [-1 if v is None else index.setdefault(v, len(index)) for v in values] + [-1], dtype=np.int64
    )
    return bulk.Codes(remap[codes], tuple(index))


def _instants(us: np.ndarray) -> bulk.Codes:
    """Instants (µs since the epoch) as codes of their ISO texts, as ``datetime.isoformat`` writes a UTC
    instant (the fraction only where there is one), by Arrow per distinct instant."""
    codes, uniques = pd.factorize(us, sort=False)
    values = np.asarray(uniques, dtype=np.int64)
    text = pc.cast(pa.array(values, type=pa.timestamp("us")), pa.string())  # 2026-10-01 12:00:00.000000
    text = pc.binary_replace_slice(text, 10, 11, "T")
    whole = pa.array(values % 1_000_000 == 0)
    text = pc.if_else(whole, pc.utf8_slice_codeunits(text, 0, 19), text)
    text = pc.binary_join_element_wise(text, "+00:00", "")
    return bulk.Codes(codes.astype(np.int64), text.to_pylist())


def _dec(text: Any) -> Decimal:
    try:
        return Decimal(text if isinstance(text, str) else str(text))
    except InvalidOperation:
        raise DocumentError(f"{text!r} is not an amount") from None


def _minor(amount: Decimal, currency: str, places: int) -> int:
    """``amount`` in minor units of ``currency`` (``places`` its decimals); DocumentError if it has more."""
    value = amount.scaleb(places)
    if value != value.to_integral_value():
        raise DocumentError(f"{amount} is not a {currency} amount in minor units")
    return int(value)


def _owner_of(fleet: np.ndarray, currency: _Coded, owners: list[tuple[int, str]]) -> np.ndarray:
    """Each row's index in ``owners`` by its (fleet, currency), -1 for none."""
    index = {c: i for i, c in enumerate(currency.values)}
    width = len(index) + 1
    row_key = fleet * width + currency.codes
    known = [(i, f * width + index[c]) for i, (f, c) in enumerate(owners) if c in index]
    if not known:
        return np.full(len(fleet), -1, dtype=np.int64)
    which = np.array([i for i, _ in known], dtype=np.int64)
    keys = np.array([k for _, k in known], dtype=np.int64)
    order = np.argsort(keys)
    at = np.clip(np.searchsorted(keys[order], row_key), 0, len(keys) - 1)
    found = (keys[order][at] == row_key) & (currency.codes >= 0)
    return np.where(found, which[order][at], -1)


def _whole(table: pa.Table, name: str) -> np.ndarray:
    return pc.fill_null(table.column(name), 0).to_numpy().astype(np.int64)


def _columns(table: pa.Table, owners: dict[tuple[int, str], tuple[int, int]]) -> tuple[CdrColumns, set[int]]:
    ids = _whole(table, "id")
    ordinal = _whole(table, "n")  # a CDR without lines has one row, n NULL
    in_order = bool(np.all((ids[1:] > ids[:-1]) | ((ids[1:] == ids[:-1]) & (ordinal[1:] > ordinal[:-1]))))
    order = np.arange(len(ids)) if in_order else np.lexsort((ordinal, ids))
    ids = ids[order]
    first = np.r_[True, ids[1:] != ids[:-1]] if ids.size else np.zeros(0, dtype=bool)
    cdr_rows = order[first]  # each CDR's first row in the table

    def cdr_column(name: str) -> _Coded:
        return _Coded.of(table.column(name)).at(cdr_rows)

    currency = cdr_column("currency")
    fleet = _whole(table, "fleet_id")[cdr_rows]
    where = _owner_of(fleet, currency, list(owners))
    owner_values = np.array(list(owners.values()) or [(0, 0)], dtype=np.int64)
    account = np.where(where >= 0, owner_values[where, 0], -1)
    month_end = np.where(where >= 0, owner_values[where, 1], np.iinfo(np.int64).min)
    end_us = _whole(table, "end_us")[cdr_rows]
    kept = (where >= 0) & (end_us < month_end)
    row_of_line = np.cumsum(first) - 1  # each (sorted) row's CDR
    line_rows = order[kept[row_of_line]]  # the kept CDRs' rows in the table, in order
    row_of_line = (np.cumsum(kept) - 1)[row_of_line[kept[row_of_line]]]
    cdr_rows, account, end_us = cdr_rows[kept], account[kept], end_us[kept]
    currency = currency.at(kept)
    uid = cdr_column("uid")
    is_credit = cdr_column("is_credit")
    credit = is_credit.codes == is_credit.code_of("t")
    original = cdr_column("original_uid")
    bad = uid.first(credit & (original.codes < 0))
    if bad is not None:
        raise DocumentError(f"credit CDR {bad} needs the CDR it credits")
    has_lines = pc.is_valid(table.column("n")).to_numpy(zero_copy_only=False)[line_rows]
    lineless = np.ones(len(cdr_rows), dtype=bool)
    lineless[row_of_line[has_lines]] = False
    bad = uid.first(lineless)
    if bad is not None:
        raise DocumentError(f"CDR {bad} has no priced lines to invoice")

    rows = line_rows[has_lines]
    line_cdr = row_of_line[has_lines]

    def line_column(name: str) -> _Coded:
        return _Coded.of(table.column(name)).at(rows)

    kind = line_column("kind")
    adjustment = kind.codes != kind.code_of("component")
    dimension = line_column("dimension")
    dim_of = np.array([*(_DIMS.get(v, -1) for v in dimension.values), -1], dtype=np.int64)
    dims = dim_of[dimension.codes]
    unknown = ~adjustment & (dims < 0)
    if unknown.any():
        raise DocumentError(f"an explanation line of dimension {dimension.first(unknown)!r}")
    dims = np.where(adjustment, _ADJ, dims)
    vat_text = line_column("vat")
    no_rate = vat_text.codes < 0
    outside = set(account[line_cdr[~adjustment & no_rate]].tolist())
    priced = np.bincount(line_cdr[~adjustment], minlength=len(cdr_rows))
    outside |= set(account[priced == 0].tolist())

    qty = line_column("quantity").codes_for(lambda vs: _decimals(vs, zero="0"), null="")
    unit_text = line_column("unit_price")
    unit_price = _Coded(np.where(adjustment, -1, unit_text.codes), unit_text.values).codes_for(_decimals)
    vat = vat_text.codes_for(lambda vs: [_dec(v) for v in vs])
    currency_codes = currency.codes_for()
    currencies = list(currency_codes.values)
    sign = np.where(credit, -1, 1)[line_cdr]
    amount = line_column("amount")
    if (amount.codes < 0).any():
        raise DocumentError("an explanation line without an amount")
    line_currency = currency_codes.codes[line_cdr]
    key = (amount.codes * 2 + (sign < 0)) * len(currencies) + line_currency
    distinct, inverse = np.unique(key, return_inverse=True)
    places = [minor_units(c) for c in currencies]
    number: dict[int, Decimal] = {}
    nets: list[int] = []
    net_texts: list[str] = []
    for k in distinct.tolist():
        rest, cur = divmod(k, len(currencies))
        code, negative = divmod(rest, 2)
        if code not in number:
            number[code] = _dec(amount.values[code])
        net = -number[code] if negative else number[code]
        nets.append(_minor(net, currencies[cur], places[cur]))
        net_texts.append(str(net))
    inverse = inverse.reshape(-1)
    comp_net = np.array(nets, dtype=np.int64)[inverse]
    net_text = _dedup(inverse.astype(np.int64), net_texts)

    totals = cdr_column("total_excl")
    bad = uid.first(totals.codes < 0)
    if bad is not None:
        raise DocumentError(f"CDR {bad} has no total")
    tkey = totals.codes * len(currencies) + currency_codes.codes
    tdistinct, tinverse = np.unique(tkey, return_inverse=True)
    total = np.array(
        [
            _minor(
                _dec(totals.values[k // len(currencies)]),
                currencies[k % len(currencies)],
                places[k % len(currencies)],
            )
            for k in tdistinct.tolist()
        ],
        dtype=np.int64,
    )[tinverse.reshape(-1)]

    start_us = _whole(table, "start_us")[cdr_rows]
    holder = [cdr_column(c) for c in ("driver", "visual", "contract", "vehicle")]
    group_codes, group_first = _key(*(h.codes for h in holder))
    groups = []
    for row in group_first.tolist():
        d, v, c, w = (h.values[h.codes[row]] if h.codes[row] >= 0 else "" for h in holder)
        groups.append((d or f"Card {v or c}", w or "No vehicle"))
    cdr_id = uid.codes_for()
    signed = cdr_column("signed")
    location = cdr_column("location")
    cdr_table = bulk.CdrTable(
        invoice=account.astype(np.int64),
        cdr_id=cdr_id,
        session_ref=cdr_column("session_ref").codes_for(),
        signed_data_ref=bulk.Codes(
            np.where(signed.codes == signed.code_of("t"), cdr_id.codes, -1), cdr_id.values
        ),
        location=location.codes_for(lambda vs: [v or None for v in vs]),
        credit_of=_Coded(np.where(credit, original.codes, -1), original.values).codes_for(),
        group=_dedup(group_codes.astype(np.int64), groups),
        currency=currency_codes,
        start=_instants(start_us),
        end=_instants(end_us),
        start_us=start_us,
        end_us=end_us,
        total_excl=total,
        is_credit=credit,
        comp_cdr=line_cdr.astype(np.int64),
        comp_dimension=dims.astype(np.int64),
        comp_quantity=qty,
        comp_unit_price=unit_price,
        comp_net=comp_net,
        comp_vat=vat,
        comp_net_text=net_text,
    )
    return CdrColumns(cdr_table, ids[first][kept]), outside
