"""Issue #12, S2 (the part without a schema change): no export listed the rejected CDRs and the run's content
hash ignored them. Issue item 6: "every priced CDR settles or is rejected for a documented reason, listed in
the exports". Every run now writes ``rejected.csv`` and its content hash covers the rejections."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from settlement.core.canonical_exports import content_hash, lines_csv, rejected_csv
from settlement.core.run import settle
from settlement.export_files import write_exports

from .testkit import make_book, one_cdr_row

BOOK = make_book()


def _two_cdrs(second_emsp: str) -> pd.DataFrame:
    return pd.concat(
        [one_cdr_row(), one_cdr_row(cdr_id="X2", emsp=second_emsp, energy_micro_kwh=5_000_000)],
        ignore_index=True,
    )


def test_every_run_lists_its_rejected_cdrs_in_rejected_csv(tmp_path: Path):
    run = settle(_two_cdrs("XX*NOPE"), BOOK, "2026-10")
    write_exports(run, tmp_path)
    assert (tmp_path / "rejected.csv").read_text() == (
        "cdr_id,reason,service_period,settlement_period,first_rejected_in\n"
        "X2,no_roaming_agreement,2026-10,2026-10,2026-10\n"
    )
    clean = settle(one_cdr_row(), BOOK, "2026-10")
    write_exports(clean, tmp_path / "clean")
    assert (tmp_path / "clean" / "rejected.csv").read_text() == (
        "cdr_id,reason,service_period,settlement_period,first_rejected_in\n"
    )


def test_the_content_hash_covers_the_rejections():
    rejected = settle(_two_cdrs("XX*NOPE"), BOOK, "2026-10")
    alone = settle(one_cdr_row(), BOOK, "2026-10")
    # same lines, one more rejection: a different run, a different hash
    assert lines_csv(rejected.lines) == lines_csv(alone.lines)
    assert rejected.summary.content_hash != alone.summary.content_hash
    assert (
        rejected.summary.content_hash
        == hashlib.sha256(lines_csv(rejected.lines) + rejected_csv(rejected.rejected)).hexdigest()
    )
    # without rejections the hash is that of lines.csv alone, as stored by runs before rejections counted
    assert alone.summary.content_hash == content_hash(alone.lines)
