"""billing.core.bulk.render_forked renders in forked processes the documents render makes in one, in head
order, to the byte; and what render refuses it refuses (the error comes back from the process)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.core import bulk
from billing.core.documents import DocumentError
from billing.core.lines import Dimension
from billing.core.vat import NORMAL
from tests.billing.kit import FLEET, SELLER, T0, TERMS, fleet_months, simple_cdr, synthetic_months

_render_part = bulk._render_part


def heads(n: int) -> list[bulk.InvoiceHead]:
    return [
        bulk.InvoiceHead("INV", f"INV-2026-{k + 1:06d}", date(2026, 7, 1), SELLER, FLEET, TERMS, NORMAL)
        for k in range(n)
    ]


_PID_DIR: list[str] = []


def _recording_part(invoices: range) -> list[bulk.BulkInvoice]:
    """bulk._render_part, leaving the process id in a file (the parts are rendered elsewhere)."""
    with open(os.path.join(_PID_DIR[0], str(os.getpid())), "w"):
        pass
    return _render_part(invoices)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(months=st.lists(st.one_of(synthetic_months(), fleet_months()), min_size=3, max_size=5))
def test_forked_documents_are_render_s_in_order(months, tmp_path_factory) -> None:
    table = bulk.table_of(months)
    hs = heads(len(months))
    try:
        expected = bulk.monthly_invoices(table, hs)
    except DocumentError:
        return
    pid_dir = str(tmp_path_factory.mktemp("pids"))
    old = bulk.FORK_LINES, bulk._render_part
    _PID_DIR[:] = [pid_dir]
    bulk.FORK_LINES, bulk._render_part = 0, _recording_part
    try:
        got = bulk.render_forked(bulk.prepare(table, hs), processes=2)
    finally:
        bulk.FORK_LINES, bulk._render_part = old
    assert [(g.index, g.number, g.totals, g.breakdown, g.n_lines, g.document) for g in got] == [
        (e.index, e.number, e.totals, e.breakdown, e.n_lines, e.document) for e in expected
    ]
    pids = {int(p) for p in os.listdir(pid_dir)}
    assert pids and os.getpid() not in pids  # rendered in other processes


def test_a_refused_document_is_refused_from_the_process(monkeypatch) -> None:
    months = [
        [simple_cdr(f"C-{m}-{k}", [(Dimension.ENERGY, "10", "3.50", "21")], start=T0 + timedelta(hours=k))]
        for m in range(4)
        for k in range(1)
    ]
    table = bulk.table_of(months)
    hs = heads(len(months))
    hs[2] = replace(hs[2], seller=replace(hs[2].seller, vat_id=None))  # BR-S-02
    monkeypatch.setattr(bulk, "FORK_LINES", 0)
    with pytest.raises(DocumentError, match="VAT id"):
        bulk.render_forked(bulk.prepare(table, hs), processes=2)
    del hs[2], months[2]
    got = bulk.render_forked(bulk.prepare(bulk.table_of(months), hs), processes=2)
    assert [g.number for g in got] == [h.number for h in hs]
