"""A settlement period's lines in bounded memory: spilled to disk chunk by chunk, totals folded as they come,
and the canonical exports, content hash and statements written bucket by bucket.

:class:`PeriodLines` takes each chunk's lines of the period (:meth:`PeriodLines.add`): it writes them to a
spill file (Arrow IPC, lz4) and folds them into small aggregates — per (currency, kind) totals for the
summary, and per (party, counterparty, currency, kind) sums and counts of the paying lines, which give every
statement's totals, its subtotals by kind and by counterparty, its number of entries and the bilateral
transfers (:func:`settlement.core.netting.bilateral` of the aggregates is that of the lines: it only sums
them). It also keeps a sample of the chunk's sorted CDR ids.

:meth:`PeriodLines.finish` then orders the lines canonically (``cdr_id``, ``line_no``: every line is of the
one period) without holding them: the sample gives bucket boundaries of CDR ids, every spill file is read
once and cut into the buckets (one IPC file each), and each bucket — a range of CDR ids, so each CDR's lines
are in one bucket — is loaded alone, sorted, appended to ``lines.csv`` / ``lines.parquet`` and to the
content hash, and its ledger entries (both sides of each paying line) are rendered as the statements' HTML
rows into one file per bucket, sorted by party and currency, with the byte range of each (party, currency).
Each party's statement is then the template's text around its sections with those ranges copied in, bucket
after bucket: the bytes :func:`settlement.export_files.statement_html` renders from all the lines at once
(tested on generated periods), hashed as they are written.

Memory: one chunk's lines (and all of them only while there are at most :data:`KEEP_LINES`), or one bucket (:data:`BUCKET_LINES` lines) and its text, plus the aggregates
(a few rows per party) and the sample (one id in :data:`SAMPLE_EVERY`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from markupsafe import escape

from settlement.core.canonical_exports import (
    PARQUET_OPTIONS,
    canonical_table,
    format_amounts,
    lines_arrow,
    rejected_csv,
)
from settlement.core.chunked import concat_frames
from settlement.core.minor import format_minor, from_minor
from settlement.core.netting import bilateral
from settlement.core.run import ChunkResult, RunResult, RunSummary, finish
from settlement.core.split import LINE_COLUMNS
from settlement.core.statements import AMOUNTS, PAYING_KINDS, ledger
from settlement.export_files import party_file, statement_hashes, statement_pieces, subtotals, write_exports

BUCKET_LINES = 1_000_000
"""Lines per bucket of the canonical pass (about what one bucket costs in memory: a few hundred MB)."""
KEEP_LINES = 250_000
"""A period of at most this many lines also keeps them in memory for the caller (``result.lines``, as one
split of all the CDRs gives them); a larger one only has them in the exports."""
SAMPLE_EVERY = 64
"""One CDR id in this many is kept to choose the buckets' boundaries."""

_TEXT = [c for c in LINE_COLUMNS if c not in (*AMOUNTS, "line_no", "agreement_version", "is_adjustment")]
_SCHEMA = pa.schema(
    [
        pa.field(
            c,
            pa.int64()
            if c in (*AMOUNTS, "line_no", "agreement_version")
            else pa.bool_()
            if c == "is_adjustment"
            else pa.string(),
        )
        for c in LINE_COLUMNS
    ]
)
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")
_GROUP = ["party", "counterparty", "currency", "kind"]


@dataclass(frozen=True)
class StatementTotal:
    """One currency of a party's statement: totals and number of entries (what ``settlement_statements``
    stores), without the entries."""

    party: str
    currency: str
    net: Decimal
    vat: Decimal
    gross: Decimal
    entries: int


@dataclass(frozen=True)
class PeriodOutputs:
    """What :meth:`PeriodLines.finish` gives: the run's result (``lines``: the period's lines when there are at
    most :data:`KEEP_LINES`, else none: they are in the exports), each party's statement hash and its totals
    per currency."""

    result: RunResult
    statement_hashes: dict[str, str]
    statements: tuple[StatementTotal, ...]


def _arrow(lines: pd.DataFrame) -> pa.Table:
    """Lines with a fixed schema (categoricals as strings, missing as null), whatever the chunk's dtypes."""
    arrays = []
    for name in LINE_COLUMNS:
        col = lines[name]
        if name in _TEXT:
            values = col.astype(object).where(col.notna(), None).to_numpy(dtype=object)
            arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
        elif name == "is_adjustment":
            arrays.append(pa.array(col.to_numpy(dtype=bool), type=pa.bool_()))
        else:
            arrays.append(pa.array(col.to_numpy(dtype=np.int64), type=pa.int64()))
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


def _frame(table: pa.Table) -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: table.column(c).to_numpy(zero_copy_only=False)
            if c not in _TEXT
            else np.asarray(table.column(c).to_pylist(), dtype=object)
            for c in LINE_COLUMNS
        }
    )


def _read(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).read_all()


@dataclass
class PeriodLines:
    """The lines of one period's run, fed chunk by chunk (:meth:`add`), then written out (:meth:`finish`)."""

    period: str
    work_dir: Path
    bucket_lines: int = BUCKET_LINES
    count: int = 0
    _spills: list[Path] = field(default_factory=list)
    _sample: list[np.ndarray] = field(default_factory=list)
    _paying: list[pd.DataFrame] = field(default_factory=list)
    _totals: list[pd.DataFrame] = field(default_factory=list)
    keep_lines: int = KEEP_LINES
    _parties: set[str] = field(default_factory=set)
    _kept: list[pd.DataFrame] | None = field(default_factory=list)
    _empty: pd.DataFrame | None = None

    def add(self, lines: pd.DataFrame) -> None:
        """Spill one chunk's lines of the period and fold them into the aggregates."""
        if self._empty is None:
            self._empty = lines.iloc[:0].copy()
        if not len(lines):
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"chunk-{len(self._spills):06d}.arrow"
        table = _arrow(lines)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, _SCHEMA, options=_IPC) as writer:
            writer.write_table(table)
        self._spills.append(path)
        self.count += len(lines)
        if self._kept is not None:
            self._kept.append(lines)
            if self.count > self.keep_lines:
                self._kept = None  # too many to hold: the caller reads them from the exports
        ids = np.unique(lines["cdr_id"].astype(str).to_numpy(dtype=str))
        self._sample.append(ids[::SAMPLE_EVERY])
        text = {c: lines[c].astype(str) for c in ("party", "counterparty", "currency", "kind")}
        amounts = lines[list(AMOUNTS)].astype(np.int64)
        keyed = pd.DataFrame({**text, **{a: amounts[a] for a in AMOUNTS}})
        self._parties.update(text["party"].unique().tolist())
        paying = keyed[keyed["kind"].isin(PAYING_KINDS)].assign(n=1)
        self._paying = [_fold([*self._paying, paying.groupby(_GROUP, sort=False)[[*AMOUNTS, "n"]].sum()])]
        self._totals = [
            _fold([*self._totals, keyed.groupby(["currency", "kind"], sort=False)[list(AMOUNTS)].sum()])
        ]

    def finish(self, rejected: pd.DataFrame, considered: int, folder: Path | None) -> PeriodOutputs:
        """The run's summary, transfers, statements and (``folder``) exports; removes the spill files."""
        try:
            if self.count == 0:
                return self._finish_empty(rejected, considered, folder)
            return self._finish(rejected, considered, folder)
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _finish_empty(self, rejected: pd.DataFrame, considered: int, folder: Path | None) -> PeriodOutputs:
        empty = self._empty if self._empty is not None else pd.DataFrame(columns=list(LINE_COLUMNS))
        result = finish(self.period, [ChunkResult(empty, rejected, considered, empty)])
        hashes = write_exports(result, folder) if folder else statement_hashes(result)
        return PeriodOutputs(result, hashes, ())

    def _finish(self, rejected: pd.DataFrame, considered: int, folder: Path | None) -> PeriodOutputs:
        paying = self._paying[0].reset_index()
        heads = _statement_heads(paying, sorted(self._parties))
        buckets = self._buckets()
        csv_hash = hashlib.sha256()
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
        csv_file = (folder / "lines.csv").open("wb") if folder else None
        parquet = (
            pq.ParquetWriter(
                str(folder / "lines.parquet"), lines_arrow(self._empty).schema, **PARQUET_OPTIONS
            )
            if folder and self._empty is not None
            else None
        )
        settled = adjustments = 0
        used: set[str] = set()
        html_parts: list[tuple[IO[bytes], dict[tuple[str, str], tuple[int, int]]]] = []
        try:
            for b, path in enumerate(buckets):
                lines = _frame(_read(path))
                path.unlink()
                table = canonical_table(lines)
                data = table.to_csv(index=False, header=b == 0, lineterminator="\n").encode("utf-8")
                csv_hash.update(data)
                if csv_file is not None:
                    csv_file.write(data)
                del table, data
                if parquet is not None:
                    parquet.write_table(lines_arrow(lines))
                ids = lines["cdr_id"]
                settled += int(ids.nunique())
                adjustments += int(ids[lines["is_adjustment"].to_numpy(dtype=bool)].nunique())
                used.update(lines["agreement_id"].astype(str) + "@v" + lines["agreement_version"].astype(str))
                rows_path = self.work_dir / f"rows-{b:05d}.html"
                offsets = _html_rows(lines, rows_path)
                html_parts.append((rows_path.open("rb"), offsets))
        finally:
            if csv_file is not None:
                csv_file.close()
            if parquet is not None:
                parquet.close()
        if len(rejected):
            csv_hash.update(rejected_csv(rejected))
        summary = RunSummary(
            period=self.period,
            cdrs_considered=considered,
            cdrs_settled=settled,
            adjustments=adjustments,
            cdrs_rejected=len(rejected),
            rejected_by_reason={
                str(k): int(v) for k, v in rejected["reason"].value_counts().sort_index().items()
            },
            lines=self.count,
            totals=self._summary_totals(),
            agreements_used=sorted(used),
            content_hash=csv_hash.hexdigest(),
        )
        transfers = bilateral(paying.drop(columns="n"))
        kept = concat_frames(self._kept) if self._kept else self._empty
        result = RunResult(self.period, kept, rejected, transfers, summary)
        if folder:
            (folder / "rejected.csv").write_bytes(rejected_csv(rejected))
            transfers.to_csv(folder / "transfers.csv", index=False, lineterminator="\n")
            (folder / "summary.json").write_text(
                json.dumps(summary.as_dict(), indent=2, sort_keys=True) + "\n"
            )
            (folder / "statements").mkdir(exist_ok=True)
        hashes: dict[str, str] = {}
        totals: list[StatementTotal] = []
        try:
            for party, sections in heads.items():
                target = folder / "statements" / f"{party_file(party)}.html" if folder else None
                hashes[party] = _write_statement(party, self.period, sections, html_parts, target)
                totals += [
                    StatementTotal(
                        party, s["currency"], s["totals"][0], s["totals"][1], s["totals"][2], s["entries"]
                    )
                    for s in sections
                ]
        finally:
            for source, _offsets in html_parts:
                source.close()
        return PeriodOutputs(result, hashes, tuple(totals))

    def _summary_totals(self) -> dict[str, dict[str, dict[str, str]]]:
        grouped = self._totals[0].sort_index()
        out: dict[str, dict[str, dict[str, str]]] = {}
        for (currency, kind), row in grouped.iterrows():
            out.setdefault(str(currency), {})[str(kind)] = {
                name: format_minor(int(row[f"{name}_minor"]), str(currency))
                for name in ("net", "vat", "gross")
            }
        return out

    def _buckets(self) -> list[Path]:
        """The spilled lines cut into ranges of CDR ids (in order), one IPC file each."""
        sample = np.sort(np.concatenate(self._sample))
        count = max(1, -(-self.count // self.bucket_lines))
        bounds = (
            np.unique(sample[[len(sample) * k // count for k in range(1, count)]])
            if count > 1
            else sample[:0]
        )
        paths = [self.work_dir / f"bucket-{b:05d}.arrow" for b in range(len(bounds) + 1)]
        sinks = [pa.OSFile(str(p), "wb") for p in paths]
        writers = [pa.ipc.new_file(s, _SCHEMA, options=_IPC) for s in sinks]
        try:
            for spill in self._spills:
                table = _read(spill)
                spill.unlink()
                ids = np.asarray(table.column("cdr_id").to_pylist(), dtype=str)
                which = np.searchsorted(bounds, ids, side="right")
                order = np.argsort(which, kind="stable")
                edges = np.searchsorted(which[order], np.arange(len(paths) + 1))
                for b in range(len(paths)):
                    if edges[b] < edges[b + 1]:
                        writers[b].write_table(table.take(pa.array(order[edges[b] : edges[b + 1]])))
        finally:
            for w in writers:
                w.close()
            for s in sinks:
                s.close()
        return paths


def _fold(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Partial aggregates (indexed by their keys) summed into one."""
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts).groupby(level=list(range(parts[0].index.nlevels)), sort=False).sum()


def _statement_heads(paying: pd.DataFrame, labels: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each party's sections (sorted by currency) from the paying lines' aggregates: totals, subtotals by kind
    and by counterparty, number of entries, as :func:`settlement.core.statements.build_statement` has them."""
    own = paying
    other = paying.assign(party=paying["counterparty"], counterparty=paying["party"])
    for a in AMOUNTS:
        other[a] = -other[a]
    entries = pd.concat([own, other], ignore_index=True)
    out: dict[str, list[dict[str, Any]]] = {}
    by_party: dict[str, pd.DataFrame] = {str(p): g for p, g in entries.groupby("party", sort=True)}
    for party in labels:
        sections = []
        book = by_party.get(party, entries.iloc[:0])
        for currency in sorted(book["currency"].unique()):
            e = book[book["currency"] == currency]
            sums = e[list(AMOUNTS)].sum()
            net, vat, gross = (from_minor(int(sums[f"{n}_minor"]), currency) for n in ("net", "vat", "gross"))
            by_kind = e.groupby("kind", sort=True)[list(AMOUNTS)].sum().reset_index()
            by_cp = e.groupby("counterparty", sort=True)[list(AMOUNTS)].sum().reset_index()
            sections.append(
                {
                    "currency": currency,
                    "net": f"{net:f}",
                    "vat": f"{vat:f}",
                    "gross": f"{gross:f}",
                    "by_kind": subtotals(by_kind, "kind", currency),
                    "by_counterparty": subtotals(by_cp, "counterparty", currency),
                    "totals": (net, vat, gross),
                    "entries": int(e["n"].sum()),
                }
            )
        out[party] = sections
    return out


_SPECIAL = r"[&<>\"']"


def _escaped(values: pd.Series) -> pd.Series:
    """Text as Jinja's autoescape writes it (markupsafe), vectorised when there is nothing to escape."""
    text = values.astype(str)
    if text.str.contains(_SPECIAL, regex=True).any():
        return text.map(lambda v: str(escape(v)))
    return text


def _html_rows(lines: pd.DataFrame, path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """The statements' entry rows of one bucket's lines, written to ``path`` sorted by party and currency (as
    :func:`~settlement.core.statements.ledger` orders them); each (party, currency)'s byte range."""
    book = ledger(lines)
    currency = book["currency"].astype(str).to_numpy()
    adjusts = book["adjusts_period"].astype(object).where(book["adjusts_period"].notna(), "")
    rows = (
        "<tr><td>"
        + _escaped(book["cdr_id"])
        + "</td><td>"
        + _escaped(book["kind"])
        + "</td><td>"
        + _escaped(book["counterparty"])
        + '</td><td class="amount">'
        + format_amounts(book["net_minor"].to_numpy(), currency)
        + '</td><td class="amount">'
        + format_amounts(book["vat_minor"].to_numpy(), currency)
        + '</td><td class="amount">'
        + format_amounts(book["gross_minor"].to_numpy(), currency)
        + "</td><td>"
        + _escaped(adjusts)
        + "</td></tr>\n"
    ).tolist()
    party = book["party"].astype(str).to_numpy()
    change = np.flatnonzero((party[1:] != party[:-1]) | (currency[1:] != currency[:-1])) + 1
    edges = [0, *change.tolist(), len(rows)]
    offsets: dict[tuple[str, str], tuple[int, int]] = {}
    at = 0
    with path.open("wb") as sink:
        for lo, hi in itertools.pairwise(edges):
            if lo == hi:
                continue
            data = "".join(rows[lo:hi]).encode("utf-8")
            sink.write(data)
            offsets[(str(party[lo]), str(currency[lo]))] = (at, len(data))
            at += len(data)
    return offsets


def _write_statement(
    party: str,
    period: str,
    sections: list[dict[str, Any]],
    rows: list[tuple[IO[bytes], dict[tuple[str, str], tuple[int, int]]]],
    target: Path | None,
) -> str:
    """Write (``target``) and hash one party's statement: the template's text around its sections, each
    section's rows copied from the buckets in order; the sha256 of the HTML."""
    pieces = [p.encode("utf-8") for p in statement_pieces(party, period, sections)]
    digest = hashlib.sha256()
    sink = target.open("wb") if target else None
    try:

        def put(data: bytes) -> None:
            digest.update(data)
            if sink is not None:
                sink.write(data)

        put(pieces[0])
        for section, after in zip(sections, pieces[1:], strict=True):
            for source, offsets in rows:
                span = offsets.get((party, section["currency"]))
                if span is None:
                    continue
                source.seek(span[0])
                left = span[1]
                while left:
                    data = source.read(min(left, 1 << 22))
                    put(data)
                    left -= len(data)
            put(after)
    finally:
        if sink is not None:
            sink.close()
    return digest.hexdigest()


__all__ = ["BUCKET_LINES", "PeriodLines", "PeriodOutputs", "StatementTotal"]
