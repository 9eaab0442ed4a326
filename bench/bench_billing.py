"""Benchmark: the monthly invoices of 100,000 fleet tokens over 10 million CDRs, next to their settlement split.

Run: ``/usr/bin/time -v .venv/bin/python -m bench.bench_billing [n_cdrs] [processes]`` (default 10,000,000 and
2; ``EVHUB_BENCH_CDRS`` overrides the default for ``python -m bench``). Prints figures; asserts only
correctness (each fleet's lines equal its CDRs to the cent, totals add up, numbers gap-free per issuer, the bulk
documents are the core's to the byte on a sample), never time.

The CDRs are the settlement benchmark's (:func:`bench.bench_settlement.make_cdrs`, same seed: EUR and JPY,
energy / time / parking / flat components with NL, DE, BE VAT, 1 % credit CDRs); a second seeded generator adds
what billing needs: 100,000 tokens (driver, vehicle) in 10,000 fleets of one currency each, 100 issuers (one
VAT exempt, some allowing reverse charge to German fleets), quantities and unit prices, signed data on a
quarter of the sessions, and a price cap (min/max adjustment) on 2 % of them.

What is timed:

* ``settlement split``: :func:`settlement.core.split.split` and the positions, as bench_settlement times them;
* ``core baseline``: the straightforward core (PricedCdr -> ``monthly_invoice`` -> ``to_json`` -> JSON) on a
  sample of fleets, extrapolated per CDR;
* ``billing``: numbering (gap-free per issuer), :func:`billing.core.bulk.prepare` (lines, order, VAT classes,
  vectorised, one process) and :func:`billing.core.bulk.render` (breakdowns, totals and every invoice's
  stored JSON, in ``processes`` forked processes); the JSON is measured (bytes, CRC) and dropped;
* ``cii_xml``: the EN 16931 XML of the sample (each stored JSON loaded back with the core's validation).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import zlib
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from bench.bench_settlement import CLOSES, make_book, make_cdrs
from billing.core import bulk
from billing.core.documents import Address, Identity, PaymentTerms
from billing.core.invoices import monthly_invoice
from billing.core.issuers import Issuer
from billing.core.numbering import Series, check_sequence
from billing.einvoice import cii_xml
from billing.store.codec import load_invoice, to_json
from settlement.core.split import split

N_FLEETS, TOKENS_PER_FLEET, N_ISSUERS, JPY_ISSUERS = 10_000, 10, 100, 10
ISSUE = date(2026, 11, 1)
RATES = {"NL": Decimal(21), "DE": Decimal(19), "BE": Decimal(21)}
SAMPLE_EVERY = 250
PREPARED: bulk.Prepared | None = None


def issuers() -> list[Issuer]:
    out = []
    for k in range(N_ISSUERS):
        out.append(
            Issuer(
                key=f"NL*I{k:02d}",
                identity=Identity(
                    f"Charging Operator {k:02d} B.V.",
                    Address("Stationsplein 1", "1012 AB", "Amsterdam", "NL"),
                    vat_id=f"NL{k:09d}B01",
                    registration_id=f"KvK {k:08d}",
                    business=True,
                ),
                currency="JPY" if k >= N_ISSUERS - JPY_ISSUERS else "EUR",
                invoice_series=Series("INV"),
                credit_series=Series("CN"),
                terms=PaymentTerms(30),
                reverse_charge_allowed=k % 5 == 0,
                exemption="Exempt under the small undertakings scheme"
                if k == N_ISSUERS - JPY_ISSUERS - 1
                else None,
            )
        )
    return out


def fleet_currency(fleet: np.ndarray) -> np.ndarray:
    """0 EUR, 1 JPY (one fleet in ten)."""
    return (fleet % 10 == 9).astype(np.int64)


def fleet_issuer(fleet: int) -> int:
    if fleet % 10 == 9:
        return N_ISSUERS - JPY_ISSUERS + (fleet // 10) % JPY_ISSUERS
    return (fleet // 10) % (N_ISSUERS - JPY_ISSUERS)


def buyer(fleet: int) -> Identity:
    country = "DE" if fleet % 7 == 0 else "NL"
    return Identity(
        f"Fleet {fleet:05d} GmbH" if country == "DE" else f"Fleet {fleet:05d} B.V.",
        Address("Hafenstr. 3", "20457", "Hamburg", "DE")
        if country == "DE"
        else Address("Damrak 5", "1012 LG", "Amsterdam", "NL"),
        vat_id=f"{country}{fleet:09d}" + ("" if country == "DE" else "B01"),
        email=f"billing@fleet{fleet:05d}.example",
        business=True,
    )


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used, inverse = np.unique(values, return_inverse=True)
    return used, inverse.reshape(-1)


def billing_table(cdrs: pd.DataFrame, seed: int = 7) -> tuple[bulk.CdrTable, np.ndarray]:
    """The settlement benchmark's CDRs as a :class:`bulk.CdrTable` (invoice = fleet, renumbered over the
    fleets that have CDRs) and each CDR's fleet."""
    rng = np.random.default_rng(seed)
    n = len(cdrs)
    jpy = cdrs["currency"].cat.codes.to_numpy() == 1
    fleets = np.arange(N_FLEETS)
    pools = [fleets[fleet_currency(fleets) == c] for c in (0, 1)]
    fleet = np.where(
        jpy, pools[1][rng.integers(0, len(pools[1]), n)], pools[0][rng.integers(0, len(pools[0]), n)]
    )
    credit = cdrs["is_credit"].to_numpy()
    total = cdrs["total_excl"].to_numpy()
    # a fleet whose month would be negative (few CDRs, a credit among them) would get a credit note, not an
    # invoice: such credit CDRs move to the fleets of the currency's largest CDRs (only in small runs)
    for _ in range(10):
        sums = np.bincount(fleet, weights=total, minlength=N_FLEETS)
        negative = credit & (sums[fleet] < 0)
        if not negative.any():
            break
        for currency in (False, True):
            moved = np.flatnonzero(negative & (jpy == currency))
            biggest = np.flatnonzero(~credit & (jpy == currency))
            biggest = biggest[np.argsort(-total[biggest], kind="stable")][: len(moved)]
            fleet[moved[: len(biggest)]] = fleet[biggest]
    else:
        raise RuntimeError("too few CDRs for every fleet's month to be positive")
    token = fleet * TOKENS_PER_FLEET + rng.integers(0, TOKENS_PER_FLEET, n)
    present, invoice = _codes(fleet)

    ids = cdrs["cdr_id"].to_numpy(dtype=object).tolist()
    id_codes = np.arange(n, dtype=np.int64)
    end_s = cdrs["end_date_time"].dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64)
    start_s = end_s - rng.integers(600, 4 * 3600, n)
    instants, inverse = _codes(np.concatenate([start_s, end_s]))
    texts = [t + "+00:00" for t in np.datetime_as_string(instants.astype("datetime64[s]"), unit="s").tolist()]
    country = cdrs["country"].cat.categories.to_numpy()[cdrs["country"].cat.codes.to_numpy()]
    rate_values = (RATES["NL"], RATES["DE"])
    vat_code = (country == "DE").astype(np.int64)

    # components: energy always, time / parking / flat when priced, a cap on 2 % of the sessions
    energy = cdrs["energy_excl"].to_numpy()
    capped = (~credit) & (energy >= 200) & (rng.random(n) < 0.02)
    cap = np.where(capped, energy * rng.integers(10, 40, n) // 100, 0)
    parts: list[
        tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    ] = []  # kind, rows, qty, price, net
    wh = cdrs["energy_micro_kwh"].to_numpy() // 1000
    all_rows = np.arange(n)
    parts.append((0, all_rows, wh, np.where(jpy, 1, 0), energy + cap))
    for part_kind, column, unit_prices in (
        (1, "time_excl", (2, 3)),
        (2, "parking_excl", (4, 5)),
        (3, "fixed_excl", (6, 7)),
    ):
        net = cdrs[column].to_numpy()
        rows = np.flatnonzero(net != 0)
        qty = np.zeros(len(rows), dtype=np.int64) if part_kind == 3 else rng.integers(5, 400, len(rows))
        parts.append((part_kind, rows, qty, np.where(jpy[rows], unit_prices[1], unit_prices[0]), net[rows]))
    rows = np.flatnonzero(capped)
    parts.append((4, rows, np.full(len(rows), -1), np.full(len(rows), -1), -cap[rows]))
    kind = np.concatenate([np.full(len(p[1]), p[0]) for p in parts])
    comp_cdr = np.concatenate([p[1] for p in parts])
    order = np.lexsort((kind, comp_cdr))
    kind, comp_cdr = kind[order], comp_cdr[order]
    raw_qty = np.concatenate([p[2] for p in parts])[order]
    price = np.concatenate([p[3] for p in parts])[order]
    comp_net = np.concatenate([p[4] for p in parts])[order]
    # quantity texts: kWh with 3 decimals (energy), hours with 2 (time, parking), 1 (flat)
    qty_key = np.where(kind == 0, raw_qty * 4, np.where(kind >= 3, 3, raw_qty * 4 + 1))
    q_used, q_codes = _codes(qty_key)
    q_texts = [
        "1"
        if k == 3
        else f"{k // 4 // 1000}.{k // 4 % 1000:03d}"
        if k % 4 == 0
        else f"{k // 4 // 100}.{k // 4 % 100:02d}"
        for k in q_used.tolist()
    ]
    prices = ["0.37", "55", "1.20", "180", "2.50", "300", "0.35", "35"]
    dims = (
        bulk.DIMENSIONS.index(bulk.Dimension.ENERGY),
        bulk.DIMENSIONS.index(bulk.Dimension.TIME),
        bulk.DIMENSIONS.index(bulk.Dimension.PARKING_TIME),
        bulk.DIMENSIONS.index(bulk.Dimension.FLAT),
        bulk.DIMENSIONS.index(bulk.Dimension.ADJUSTMENT),
    )
    signed = rng.random(n) < 0.25
    table = bulk.CdrTable(
        invoice=invoice,
        cdr_id=bulk.Codes(id_codes, ids),
        session_ref=bulk.Codes(id_codes, ["S-" + i for i in ids]),
        signed_data_ref=bulk.Codes(np.where(signed, id_codes, -1), ids),
        location=bulk.Codes(
            cdrs["location_id"].cat.codes.to_numpy(), list(cdrs["location_id"].cat.categories)
        ),
        credit_of=bulk.Codes(np.where(credit, rng.integers(0, n, n), -1), ids),
        group=bulk.Codes(
            token,
            [(f"Driver {t:06d}", f"EV-{t:06d}") for t in range(N_FLEETS * TOKENS_PER_FLEET)],
        ),
        currency=bulk.Codes(jpy.astype(np.int64), ["EUR", "JPY"]),
        start=bulk.Codes(inverse[:n], texts),
        end=bulk.Codes(inverse[n:], texts),
        start_us=start_s * 1_000_000,
        end_us=end_s * 1_000_000,
        total_excl=cdrs["total_excl"].to_numpy().astype(np.int64),
        is_credit=credit,
        comp_cdr=comp_cdr,
        comp_dimension=np.array(dims)[kind],
        comp_quantity=bulk.Codes(q_codes, q_texts),
        comp_unit_price=bulk.Codes(np.where(kind == 4, -1, price), prices),
        comp_net=comp_net,
        comp_vat=bulk.Codes(vat_code[comp_cdr], rate_values),
    )
    return table, present


def heads_for(fleets: np.ndarray, all_issuers: list[Issuer]) -> list[bulk.InvoiceHead]:
    """One head per fleet with CDRs, numbered gap-free per issuer in fleet order."""
    last: dict[int, tuple[date, str] | None] = {}
    out = []
    for f in fleets.tolist():
        k = fleet_issuer(f)
        issuer = all_issuers[k]
        previous = last.get(k)
        sequence = 1 if previous is None else int(previous[1].rsplit("-", 1)[1]) + 1
        number = issuer.invoice_series.format(ISSUE.year, sequence)
        last[k] = (ISSUE, number)
        who = buyer(f)
        out.append(
            bulk.InvoiceHead("INV", number, ISSUE, issuer.identity, who, issuer.terms, issuer.treatment(who))
        )
    return out


def _work(invoices: range) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
    assert PREPARED is not None
    rows, samples = [], []
    for inv in bulk.render(PREPARED, invoices):
        text = inv.document
        rows.append(
            (
                inv.index,
                inv.number,
                inv.n_lines,
                inv.totals,
                [(b.category.value, b.rate, b.taxable, b.tax) for b in inv.breakdown],
                len(text),
                zlib.crc32(text.encode()),
            )
        )
        if inv.index % SAMPLE_EVERY == 0:
            samples.append((inv.index, text))
    return rows, samples


def _minor(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(0 if currency == "JPY" else 2))


def main(n: int | None = None, processes: int = 2) -> dict:
    global PREPARED
    n = n or int(os.environ.get("EVHUB_BENCH_CDRS", "10000000"))
    figures: dict = {"cdrs": n, "processes": processes, "cores": os.cpu_count()}
    t0 = time.perf_counter()
    cdrs = make_cdrs(n)
    book = make_book()
    figures["generate_cdrs_s"] = round(time.perf_counter() - t0, 2)
    print(f"generated {n:,} CDRs (bench_settlement.make_cdrs) in {figures['generate_cdrs_s']} s", flush=True)

    t0 = time.perf_counter()
    result = split(cdrs, book, closes=CLOSES)
    positions = result.lines.groupby(["currency", "party"], observed=True)[
        ["net_minor", "vat_minor", "gross_minor"]
    ].sum()
    figures["settlement_s"] = round(time.perf_counter() - t0, 2)
    figures["settlement_lines"] = len(result.lines)
    assert (positions.groupby(level="currency", observed=True)["gross_minor"].sum() == 0).all()
    print(
        f"settlement split + positions: {len(result.lines):,} lines in {figures['settlement_s']} s",
        flush=True,
    )
    del result, positions, book

    t0 = time.perf_counter()
    table, fleets = billing_table(cdrs)
    all_issuers = issuers()
    figures["generate_billing_s"] = round(time.perf_counter() - t0, 2)
    print(
        f"billing columns: {table.n_cdrs:,} CDRs, {len(table.comp_cdr):,} components, {len(fleets):,} fleets, "
        f"{len(np.unique(table.group.codes)):,} tokens in {figures['generate_billing_s']} s",
        flush=True,
    )

    t_all = time.perf_counter()
    heads = heads_for(fleets, all_issuers)
    figures["numbering_s"] = round(time.perf_counter() - t_all, 2)
    t0 = time.perf_counter()
    PREPARED = bulk.prepare(table, heads)
    figures["prepare_s"] = round(time.perf_counter() - t0, 2)
    n_lines = int(PREPARED.bounds[-1])
    print(f"prepare: {n_lines:,} lines in {figures['prepare_s']} s", flush=True)

    t0 = time.perf_counter()
    per_task = max(1, len(heads) // (8 * processes))
    tasks = [range(a, min(a + per_task, len(heads))) for a in range(0, len(heads), per_task)]
    rows: list[tuple[Any, ...]] = []
    samples: dict[int, str] = {}
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for got, sample in pool.imap_unordered(_work, tasks):
            rows += got
            samples.update(sample)
    figures["render_s"] = round(time.perf_counter() - t0, 2)
    figures["billing_total_s"] = round(time.perf_counter() - t_all, 2)
    json_bytes = sum(r[5] for r in rows)
    figures["json_gb"] = round(json_bytes / 1e9, 2)
    print(
        f"render: {len(rows):,} invoices, {json_bytes / 1e9:.2f} GB of JSON in {figures['render_s']} s "
        f"({processes} processes); billing total {figures['billing_total_s']} s "
        f"({n / figures['billing_total_s']:,.0f} CDRs/s)",
        flush=True,
    )

    # correctness: each fleet's lines are its CDRs to the cent; totals add up; numbers gap-free per issuer
    t0 = time.perf_counter()
    rows.sort()
    assert [r[0] for r in rows] == list(range(len(heads)))
    cdr_sums = pd.Series(table.total_excl).groupby(table.invoice).sum().to_numpy()
    for r, expected in zip(rows, cdr_sums.tolist(), strict=True):
        totals, vat = r[3], r[4]
        currency = totals.currency
        assert _minor(totals.line_net, currency) == expected, f"{r[1]}: lines are not the CDRs to the cent"
        assert sum((b[2] for b in vat), Decimal(0)) == totals.line_net
        for category, rate, taxable, tax in vat:
            minor = _minor(taxable, currency)
            owed = (abs(minor) * int(rate) * 2 + 100) // 200 * (1 if minor >= 0 else -1)
            assert _minor(tax, currency) == (owed if category == "S" else 0), f"{r[1]}: BR-CO-17"
        assert totals.tax == sum((b[3] for b in vat), Decimal(0))
        assert totals.payable == totals.tax_inclusive == totals.line_net + totals.tax
    assert sum(r[2] for r in rows) == n_lines
    by_issuer: dict[int, list[tuple[date, str]]] = {}
    for f, r in zip(fleets.tolist(), rows, strict=True):
        by_issuer.setdefault(fleet_issuer(f), []).append((ISSUE, r[1]))
    for numbers in by_issuer.values():
        check_sequence(Series("INV"), numbers)
    figures["check_s"] = round(time.perf_counter() - t0, 2)
    print(f"checked every fleet to the cent, totals, gap-free numbers in {figures['check_s']} s", flush=True)

    # the core baseline on the sample, which must give the same bytes
    t0 = time.perf_counter()
    sample_cdrs = 0
    for index in sorted(samples):
        priced = bulk.priced_cdrs(table, index)
        sample_cdrs += len(priced)
        head = heads[index]
        invoice = monthly_invoice(
            priced,
            series=head.series,
            number=head.number,
            issue_date=head.issue_date,
            seller=head.seller,
            buyer=head.buyer,
            terms=head.terms,
            treatment=head.treatment,
        )
        assert json.dumps(to_json(invoice)) == samples[index], f"{head.number}: bulk and core differ"
    core_s = time.perf_counter() - t0
    figures["core_sample_invoices"] = len(samples)
    figures["core_sample_cdrs"] = sample_cdrs
    figures["core_sample_s"] = round(core_s, 2)
    figures["core_us_per_cdr"] = round(core_s / max(sample_cdrs, 1) * 1e6, 1)
    figures["core_10m_extrapolated_s"] = round(core_s / max(sample_cdrs, 1) * 10_000_000 / processes, 0)
    print(
        f"core baseline: {len(samples)} invoices, {sample_cdrs:,} CDRs in {core_s:.2f} s "
        f"({figures['core_us_per_cdr']} µs per CDR, same bytes as bulk); 10M over {processes} processes "
        f"≈ {figures['core_10m_extrapolated_s']:.0f} s",
        flush=True,
    )

    # EN 16931 XML of the sample
    t0 = time.perf_counter()
    xml_bytes = xml_lines = 0
    for index in sorted(samples):
        invoice = load_invoice(json.loads(samples[index]))
        xml_bytes += len(cii_xml(invoice))
        xml_lines += len(invoice.lines)
    xml_s = time.perf_counter() - t0
    figures["xml_sample_lines"] = xml_lines
    figures["xml_sample_s"] = round(xml_s, 2)
    figures["xml_us_per_line"] = round(xml_s / max(xml_lines, 1) * 1e6, 1)
    figures["xml_all_extrapolated_s"] = round(xml_s / max(xml_lines, 1) * n_lines / processes, 0)
    print(
        f"cii_xml (load + validate + XML): {len(samples)} invoices, {xml_lines:,} lines, {xml_bytes / 1e6:.1f} MB "
        f"in {xml_s:.2f} s ({figures['xml_us_per_line']} µs per line); all {n_lines:,} lines over {processes} "
        f"processes ≈ {figures['xml_all_extrapolated_s']:.0f} s",
        flush=True,
    )
    print(figures, flush=True)
    return figures


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else None,
        int(sys.argv[2]) if len(sys.argv) > 2 else 2,
    )
