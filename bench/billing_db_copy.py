"""The billing benchmark's CDRs written into PostgreSQL as COPY text streams, a chunk of columns at a time.

:func:`copy_table` writes what :func:`bench.bench_billing_db.load_cdrs` writes for the rows of
:func:`bench.bench_billing_db.bench_rows` (the same sessions and CDRs, ids, explanations and JSON texts; a
credit CDR credits its fleet's latest CDR not credited yet, one without any is dropped), but builds no Python
object per CDR: the credit matching is one pass over two int lists, every text column is taken from the
distinct values of its codes, the explanation's per-component JSON is built from object arrays, and each chunk
becomes one COPY (text format) of sessions and one of CDRs. It also records the CDR's holder (``fleet_id``,
``driver_name``, ``vehicle``, ``holder_recorded``: its token's, as pricing records them).
"""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select, text

from bench.bench_billing import TOKENS_PER_FLEET
from billing.core import bulk
from billing.core.lines import Dimension
from kernel.db.engine import Database
from kernel.models import Token
from kernel.models.cdrs import Cdr
from kernel.models.sessions import ChargingSession
from kernel.money import minor_units

if TYPE_CHECKING:
    from bench.bench_billing_db import World

CHUNK = 500_000
"""CDRs per COPY."""
NULL = "\\N"
_NOW = "2026-10-01 00:00:00+00"  # bench_billing_db.T_SEEDED: created_at / last_updated


def _jnum(value: Any) -> str:
    """A JSON value as :func:`kernel.jsonutil.dumps` writes it (Decimal: its exact digits; None: null)."""
    if value is None:
        return "null"
    return format(Decimal(value), "f")


def _amounts(net: np.ndarray, places: np.ndarray) -> np.ndarray:
    """``Decimal(net).scaleb(-places)`` written as :func:`kernel.jsonutil.dumps` does, per distinct pair."""
    keys = np.stack([net, places], axis=1)
    distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    texts = np.array(
        [format(Decimal(int(n)).scaleb(-int(p)), "f") for n, p in distinct.tolist()], dtype=object
    )
    return texts[inverse.reshape(-1)]


def matched_credits(invoice: np.ndarray, is_credit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which rows are kept and, for each, the row its CDR is taken from (a credit CDR: the fleet's latest CDR
    not credited yet; a credit CDR without one is not kept), as :func:`bench_rows` pairs them."""
    latest: dict[int, int] = {}
    keep = np.ones(len(invoice), dtype=bool)
    source = np.arange(len(invoice), dtype=np.int64)
    for r, (inv, credit) in enumerate(zip(invoice.tolist(), is_credit.tolist(), strict=True)):
        if credit:
            found = latest.pop(inv, None)
            if found is None:
                keep[r] = False
            else:
                source[r] = found
        else:
            latest[inv] = r
    return keep, source


async def copy_table(
    db: Database, tokens: Sequence[int], table: bulk.CdrTable, location_ids: dict[str, int], world: World
) -> int:
    """Write ``table``'s CDRs (see the module) for the tokens ``tokens`` (the ``k``-th token of the ``i``-th
    fleet is ``tokens[i * 10 + k]``) and ``world``'s CPO and charge point; the number written."""
    async with db.session() as s:
        first = int(await s.scalar(select(func.coalesce(func.max(Cdr.id), 0))) or 0) + 1
        first_session = int(await s.scalar(select(func.coalesce(func.max(ChargingSession.id), 0))) or 0) + 1
        holders = {
            t: (f, d, v)
            for t, f, d, v in (
                await s.execute(select(Token.id, Token.fleet_id, Token.driver_name, Token.vehicle))
            ).all()
        }
    token_fleet = np.array([holders[t][0] for t in tokens], dtype=np.int64)
    token_text = np.array(
        ["\t".join(NULL if v is None else v for v in holders[t][1:]) for t in tokens], dtype=object
    )
    token_ids = np.array(tokens, dtype=np.int64)

    keep, source = matched_credits(table.invoice, table.is_credit)
    rows = np.flatnonzero(keep)
    out_of_row = np.cumsum(keep) - 1  # a kept row's position among the written CDRs
    credit = table.is_credit[rows]
    src = source[rows]
    session_rank = np.cumsum(~credit) - 1  # the non-credit CDRs' sessions, in order
    session_of_row = np.full(len(table.invoice), -1, dtype=np.int64)
    session_of_row[rows[~credit]] = first_session + session_rank[~credit]
    sid = session_of_row[src]
    credited = np.where(credit, (first + out_of_row[src]).astype(str).astype(object), NULL)

    currency = table.currency.codes[src]
    places_of = np.array([minor_units(c) for c in table.currency.values], dtype=np.int64)
    places = places_of[currency]
    total = _amounts(np.where(credit, -table.total_excl[src], table.total_excl[src]), places)
    token_index = table.invoice[src] * TOKENS_PER_FLEET + table.group.codes[src] % TOKENS_PER_FLEET
    location = np.array([location_ids[v] for v in table.location.values], dtype=np.int64)[
        table.location.codes[src]
    ]
    uid = np.array(table.cdr_id.values, dtype=object)[table.cdr_id.codes[src]]
    uid = np.where(credit, uid + "-C", uid)
    ref = np.array(table.session_ref.values, dtype=object)[table.session_ref.codes[src]]
    signed = (table.signed_data_ref.codes[src] >= 0) & ~credit
    data = np.where(
        signed,
        '{"session_id": "' + ref + '", "signed_data": {"x": 1}}',
        '{"session_id": "' + ref + '"}',
    )
    starts = np.array(table.start.values, dtype=object)[table.start.codes[src]]
    ends = np.array(table.end.values, dtype=object)[table.end.codes[src]]
    explanation = _explanations(table, places_of)[src]
    explanation[credit] = "{}"

    currencies = np.array(table.currency.values, dtype=object)

    def chunk(lo: int) -> tuple[bytes, bytes]:
        part = slice(lo, lo + CHUNK)
        ids = np.arange(first + lo, first + lo + len(credit[part]))
        cdr_lines = [
            f"{i}\t{u}\t{s}\t0\t{c}\t{o}\t{world.cpo_id}\t{loc}\t{tok}\t"
            f"{cur}\t{st}\t{en}\t0\t0\t{tot}\t[]\t{ex}\t{da}\t{_NOW}\t{_NOW}\t{fl}\t{dv}\tt\n"
            for i, u, s, c, o, loc, tok, cur, st, en, tot, ex, da, fl, dv in zip(
                ids.tolist(),
                uid[part].tolist(),
                sid[part].tolist(),
                np.where(credit[part], "t", "f").tolist(),
                credited[part].tolist(),
                location[part].tolist(),
                token_ids[token_index[part]].tolist(),
                currencies[currency[part]].tolist(),
                starts[part].tolist(),
                ends[part].tolist(),
                total[part].tolist(),
                explanation[part].tolist(),
                data[part].tolist(),
                token_fleet[token_index[part]].tolist(),
                token_text[token_index[part]].tolist(),
                strict=True,
            )
        ]
        own = ~credit[part]
        session_lines = [
            f"{s}\tS-{u}\t{world.charge_point_id}\t{s}\t{world.cpo_id}\tWHITELIST\tCOMPLETED\t{st}\t{en}\t0\t"
            f"{{}}\tpriced\t{{}}\t{_NOW}\t{_NOW}\t{_NOW}\n"
            for s, u, st, en in zip(
                sid[part][own].tolist(),
                uid[part][own].tolist(),
                starts[part][own].tolist(),
                ends[part][own].tolist(),
                strict=True,
            )
        ]
        return _checked(session_lines), _checked(cdr_lines)

    # each chunk's text is built in a thread while the previous chunk's COPY runs (the GIL is free while
    # the loop waits on the socket); the tables' plain indexes are built once at the end, and the foreign
    # keys' triggers are off during the COPY (the rows are the row loader's: tests/billing/test_billing_bulk_loader.py)
    indexes = await _drop_plain_indexes(db)
    try:
        pending: asyncio.Task[None] | None = None
        for lo in range(0, len(rows), CHUNK):
            texts = await asyncio.to_thread(chunk, lo)
            if pending is not None:
                await pending
            pending = asyncio.create_task(_copy(db, *texts))
        if pending is not None:
            await pending
    finally:
        async with db.engine.begin() as conn:
            for statement in indexes:
                await conn.execute(text(statement))
    written = len(rows)
    async with db.session() as s:
        for name in ("sessions", "cdrs"):
            await s.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
            )
    return written


SESSION_COLUMNS = [
    *("id", "session_uid", "charge_point_id", "transaction_id", "cpo_id", "auth_method", "status"),
    *("start_time", "end_time", "energy_wh", "flags", "pricing_state", "data", "last_updated"),
    *("created_at", "updated_at"),
]
CDR_COLUMNS = [
    *("id", "cdr_uid", "session_id", "revision", "is_credit", "credit_of", "cpo_id", "location_id"),
    *("token_id", "currency", "start_date_time", "end_date_time", "total_energy_kwh", "total_time_hours"),
    *("total_cost_excl_vat", "tariff_versions", "explanation", "data", "created_at", "last_updated"),
    *("fleet_id", "driver_name", "vehicle", "holder_recorded"),
]


def _checked(lines: list[str]) -> bytes:
    joined = "".join(lines)
    if "\\" in joined.replace(NULL, ""):  # no text needs COPY's escapes
        raise ValueError("a text of the benchmark's CDRs would need escaping in COPY")
    return joined.encode()


async def _drop_plain_indexes(db: Database) -> list[str]:
    """Drop the indexes of ``sessions`` and ``cdrs`` that back no constraint; their definitions."""
    async with db.engine.begin() as conn:
        found = (
            await conn.execute(
                text(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN ('sessions', 'cdrs') "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
                )
            )
        ).all()
        for name, _ in found:
            await conn.execute(text(f'DROP INDEX "{name}"'))
    return [definition for _, definition in found]


async def _copy(db: Database, sessions: bytes, cdrs: bytes) -> None:
    async with db.session() as s:
        await s.execute(text("SET LOCAL session_replication_role = replica"))  # no foreign-key triggers
        raw = (await (await s.connection()).get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_to_table(
            "sessions", source=io.BytesIO(sessions), columns=SESSION_COLUMNS, format="text"
        )
        await raw.copy_to_table("cdrs", source=io.BytesIO(cdrs), columns=CDR_COLUMNS, format="text")


def _explanations(table: bulk.CdrTable, places_of: np.ndarray) -> np.ndarray:
    """Each CDR's explanation JSON text (``{"lines": [...]}``, as :func:`bench_rows` gives them to
    :func:`kernel.jsonutil.dumps`), an object array by CDR row."""
    order = np.argsort(table.comp_cdr, kind="stable")
    comp_cdr = table.comp_cdr[order]
    dim = table.comp_dimension[order]
    adjustment = dim == bulk.DIMENSIONS.index(Dimension.ADJUSTMENT)
    head = np.array(
        [
            '{"kind": "MAX_PRICE", "dimension": null, "quantity": '
            if d is Dimension.ADJUSTMENT
            else f'{{"kind": "component", "dimension": "{d.value}", "quantity": '
            for d in bulk.DIMENSIONS
        ],
        dtype=object,
    )[dim]
    qty = np.array([_jnum(v) for v in table.comp_quantity.values], dtype=object)[
        table.comp_quantity.codes[order]
    ]
    qty[adjustment] = "1"
    prices = np.array([_jnum(v) for v in table.comp_unit_price.values] + ["null"], dtype=object)
    price = prices[np.where(adjustment, -1, table.comp_unit_price.codes[order])]
    vats = np.array([_jnum(v) for v in table.comp_vat.values] + ["null"], dtype=object)
    vat = vats[table.comp_vat.codes[order]]
    places = places_of[table.currency.codes[comp_cdr]]
    amount = _amounts(table.comp_net[order], places)
    items = (
        head + qty + ', "unit_price": ' + price + ', "vat": ' + vat + ', "amount_excl_vat": ' + amount + "}"
    ).tolist()
    bounds = np.searchsorted(comp_cdr, np.arange(table.n_cdrs + 1)).tolist()
    out = np.empty(table.n_cdrs, dtype=object)
    out[:] = ['{"lines": [' + ", ".join(items[a:b]) + "]}" for a, b in itertools.pairwise(bounds)]
    return out
