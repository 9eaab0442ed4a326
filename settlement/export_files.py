"""A run's files on disk: ``lines.csv``, ``rejected.csv``, ``lines.parquet``, ``transfers.csv``, ``summary.json``
and one printable HTML statement per party (``statements/PARTY.html``, rendered from
``templates/statement.html``).

The bytes come from :mod:`settlement.core.canonical_exports` (pure); this module adds the Jinja template read
from disk and the writing. The HTML is deterministic: ``generated_at`` is shown only when the caller gives it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from settlement.core.canonical_exports import format_amounts, lines_csv, lines_parquet, rejected_csv
from settlement.core.run import RunResult
from settlement.core.statements import Statement, build_statement, parties

_TEMPLATES = Path(__file__).parent / "templates"


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(_TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _amounts(values: pd.Series, currency: str) -> np.ndarray:
    """Minor units of one currency as canonical decimal strings."""
    return format_amounts(np.asarray(values, dtype=np.int64), np.full(len(values), currency))


def subtotals(frame: pd.DataFrame, key: str, currency: str) -> list[tuple[str, str, str, str]]:
    return list(
        zip(
            frame[key].astype(str),
            _amounts(frame["net_minor"], currency),
            _amounts(frame["vat_minor"], currency),
            _amounts(frame["gross_minor"], currency),
            strict=True,
        )
    )


def statement_html(statement: Statement, *, generated_at: str | None = None, hub_name: str = "evhub") -> str:
    """Printable HTML statement (deterministic; ``generated_at`` is shown only when given)."""
    sections: list[dict[str, Any]] = []
    for section in statement.sections:
        cur = section.currency
        e = section.entries
        adjusts: Sequence[str] = (
            e["adjusts_period"].astype(object).where(e["adjusts_period"].notna(), "").astype(str)
            if "adjusts_period" in e.columns
            else [""] * len(e)
        )
        rows = list(
            zip(
                e["cdr_id"].astype(str),
                e["kind"].astype(str),
                e["counterparty"].astype(str),
                _amounts(e["net_minor"], cur),
                _amounts(e["vat_minor"], cur),
                _amounts(e["gross_minor"], cur),
                adjusts,
                strict=True,
            )
        )
        sections.append(
            {
                "currency": cur,
                "rows": rows,
                "net": f"{section.net:f}",
                "vat": f"{section.vat:f}",
                "gross": f"{section.gross:f}",
                "by_kind": subtotals(section.by_kind, "kind", cur),
                "by_counterparty": subtotals(section.by_counterparty, "counterparty", cur),
            }
        )
    return _render(statement.party, statement.period, sections, generated_at=generated_at, hub_name=hub_name)


def _render(
    party: str,
    period: str | None,
    sections: list[dict[str, Any]],
    *,
    generated_at: str | None = None,
    hub_name: str = "evhub",
) -> str:
    return (
        _env()
        .get_template("statement.html")
        .render(party=party, period=period, sections=sections, generated_at=generated_at, hub_name=hub_name)
    )


_MARK = "EVHUBSECTIONROWS"


def statement_pieces(party: str, period: str | None, sections: list[dict[str, Any]]) -> list[str]:
    """The statement's HTML around its entry rows: ``len(sections) + 1`` texts; the HTML is
    ``pieces[0] + rows of section 0 + pieces[1] + ... + pieces[-1]``, each row as the template writes it
    (for writing a statement whose entries are not in memory, :mod:`settlement.period_lines`). ``sections``:
    each ``currency``, ``net``, ``vat``, ``gross`` (decimal strings), ``by_kind`` and ``by_counterparty``
    (:func:`subtotals`)."""
    marked = [{**s, "rows": [(f"{_MARK}{i}", "", "", "", "", "", "")]} for i, s in enumerate(sections)]
    html = _render(party, period, marked)
    pieces, at = [], 0
    for i in range(len(sections)):
        start = html.index(f"<tr><td>{_MARK}{i}</td>", at)
        pieces.append(html[at:start])
        at = html.index("\n", start) + 1
    pieces.append(html[at:])
    return pieces


def party_file(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)


def _sha256(html: str) -> str:
    return hashlib.sha256(html.encode("utf-8")).hexdigest()


def write_exports(result: RunResult, folder: Path) -> dict[str, str]:
    """Write the run's files; returns each party's statement hash (sha256 of its HTML)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lines.csv").write_bytes(lines_csv(result.lines))
    (folder / "rejected.csv").write_bytes(rejected_csv(result.rejected))
    (folder / "lines.parquet").write_bytes(lines_parquet(result.lines))
    result.transfers.to_csv(folder / "transfers.csv", index=False, lineterminator="\n")
    (folder / "summary.json").write_text(
        json.dumps(result.summary.as_dict(), indent=2, sort_keys=True) + "\n"
    )
    statements = folder / "statements"
    statements.mkdir(exist_ok=True)
    hashes: dict[str, str] = {}
    for label in parties(result.lines):
        html = statement_html(build_statement(result.lines, label, result.period))
        (statements / f"{party_file(label)}.html").write_text(html, encoding="utf-8")
        hashes[label] = _sha256(html)
    return hashes


def statement_hashes(result: RunResult) -> dict[str, str]:
    """Each party's statement hash, as :func:`write_exports` returns it, without writing anything."""
    return {
        label: _sha256(statement_html(build_statement(result.lines, label, result.period)))
        for label in parties(result.lines)
    }


__all__ = [
    "party_file",
    "statement_hashes",
    "statement_html",
    "statement_pieces",
    "subtotals",
    "write_exports",
]
