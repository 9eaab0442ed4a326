"""Exports that are byte-identical for the same input: canonical CSV and Parquet bytes, and the content hash.

Reproducibility rules: rows are sorted by a total key (``settlement_period, cdr_id, line_no``) with a stable
sort; amounts are written as plain decimals with exactly the currency's minor units ("-12.30", "1500" for
JPY); booleans as ``true``/``false``; missing values as empty fields; ``\\n`` line endings; UTF-8; nothing
time-dependent. :func:`rejected_csv` lists the CDRs a run could not split, in the same canonical way.
:func:`content_hash` is the sha256 of the canonical lines CSV followed by the rejected CSV (when there are
rejections), so two runs over the same CDRs and agreements give the same hash, and two runs that differ only
in what they rejected do not. Pure: bytes in memory; :mod:`settlement.export_files` writes them to disk.

Parquet: an explicit Arrow schema without pandas metadata, so the bytes depend only on the rows and the
pyarrow version. Amounts appear both as int64 minor units and as ``decimal128(38, 3)``.
"""

from __future__ import annotations

import hashlib
import io
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from kernel.money import minor_units

from .split import LINE_COLUMNS, REJECTED_COLUMNS

SORT_KEY = ("settlement_period", "cdr_id", "line_no")
CSV_COLUMNS = tuple(c.replace("_minor", "") for c in LINE_COLUMNS)  # net, vat, gross as decimals in the CSV


def canonical_order(lines: pd.DataFrame) -> pd.DataFrame:
    """Lines sorted by the total key, stable, with a fresh index."""
    keys = pd.DataFrame({k: lines[k].astype(str) if k != "line_no" else lines[k] for k in SORT_KEY})
    order = np.lexsort([keys[k].to_numpy() for k in reversed(SORT_KEY)])
    return lines.iloc[order].reset_index(drop=True)


def format_amounts(values: np.ndarray, currencies: np.ndarray) -> np.ndarray:
    """int64 minor units -> canonical decimal strings, vectorised per currency."""
    values = np.asarray(values, dtype=np.int64)
    currencies = np.asarray(currencies).astype(str)
    out = np.empty(len(values), dtype=object)
    for currency in np.unique(currencies):
        mask = currencies == currency
        mu = minor_units(str(currency))
        v = pd.Series(values[mask])
        sign = np.where(v.to_numpy() < 0, "-", "")
        mag = v.abs()
        whole = (mag // 10**mu).astype(str)
        if mu:
            frac = (mag % 10**mu).astype(str).str.zfill(mu)
            text = sign + whole + "." + frac
        else:
            text = sign + whole
        out[mask] = np.asarray(text, dtype=object)
    return out


def _text(col: pd.Series) -> pd.Series:
    if col.dtype == bool:
        return col.map({True: "true", False: "false"})
    return col.astype(object).where(col.notna(), "").astype(str)


def canonical_table(lines: pd.DataFrame) -> pd.DataFrame:
    """The CSV's content as strings, in canonical order and column order."""
    ordered = canonical_order(lines)
    cur = ordered["currency"].astype(str).to_numpy()
    out = {}
    for col in LINE_COLUMNS:
        if col.endswith("_minor"):
            out[col.replace("_minor", "")] = format_amounts(ordered[col].to_numpy(), cur)
        else:
            out[col] = _text(ordered[col]).to_numpy()
    return pd.DataFrame(out, columns=list(CSV_COLUMNS))


def lines_csv(lines: pd.DataFrame) -> bytes:
    """Canonical CSV bytes of split lines."""
    return canonical_table(lines).to_csv(index=False, lineterminator="\n").encode("utf-8")


def rejected_csv(rejected: pd.DataFrame) -> bytes:
    """Canonical CSV bytes of a run's rejected CDRs (:data:`~settlement.core.split.REJECTED_COLUMNS`: the CDR,
    why, its service and settlement period and the period that first rejected it; sorted by settlement period
    and CDR id; header only when there are none)."""
    table = pd.DataFrame(
        {c: _text(rejected[c]).to_numpy() if c in rejected else [] for c in REJECTED_COLUMNS}
    )
    if len(table):
        order = np.lexsort([table["cdr_id"].to_numpy(), table["settlement_period"].to_numpy()])
        table = table.iloc[order]
    return table.to_csv(index=False, lineterminator="\n").encode("utf-8")


def content_hash(lines: pd.DataFrame, rejected: pd.DataFrame | None = None) -> str:
    """sha256 (hex) of the canonical lines CSV followed by the rejected CSV: the reproducibility fingerprint
    of a run. A run without rejections hashes the lines CSV alone (the hash runs stored before rejections
    were hashed, so their replays still compare)."""
    data = lines_csv(lines)
    if rejected is not None and len(rejected):
        data += rejected_csv(rejected)
    return hashlib.sha256(data).hexdigest()


PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": False, "store_schema": False}
"""How the lines' Parquet is written (``pyarrow.parquet.write_table`` / ``ParquetWriter`` keywords)."""


def lines_parquet(lines: pd.DataFrame) -> bytes:
    """Parquet bytes of split lines (canonical order, explicit schema, no pandas metadata)."""
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(lines_arrow(lines), sink, **PARQUET_OPTIONS)
    return sink.getvalue()


def lines_arrow(lines: pd.DataFrame) -> Any:
    """The Arrow table :func:`lines_parquet` writes (canonical order, the explicit schema)."""
    import pyarrow as pa

    ordered = canonical_order(lines)
    cur = ordered["currency"].astype(str).to_numpy()
    scale = np.array([10 ** (3 - minor_units(c)) for c in np.unique(cur)], dtype=np.int64)
    factor = pd.Series(scale, index=np.unique(cur)).reindex(cur).to_numpy() if len(cur) else scale[:0]
    fields, arrays = [], []
    for col in LINE_COLUMNS:
        series = ordered[col]
        if col.endswith("_minor"):
            ints = series.to_numpy(dtype=np.int64)
            fields.append(pa.field(col, pa.int64(), nullable=False))
            arrays.append(pa.array(ints, type=pa.int64()))
            dec = [Decimal(int(v)).scaleb(-3) for v in ints * factor]
            fields.append(pa.field(col.replace("_minor", ""), pa.decimal128(38, 3), nullable=False))
            arrays.append(pa.array(dec, type=pa.decimal128(38, 3)))
        elif col in ("line_no", "agreement_version"):
            fields.append(pa.field(col, pa.int64(), nullable=False))
            arrays.append(pa.array(series.to_numpy(dtype=np.int64), type=pa.int64()))
        elif col == "is_adjustment":
            fields.append(pa.field(col, pa.bool_(), nullable=False))
            arrays.append(pa.array(series.to_numpy(dtype=bool), type=pa.bool_()))
        else:
            values = [None if pd.isna(v) else str(v) for v in series.astype(object)]
            fields.append(pa.field(col, pa.string()))
            arrays.append(pa.array(values, type=pa.string()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
