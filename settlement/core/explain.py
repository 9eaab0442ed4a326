"""Explain one CDR's split in words and numbers (``evhub settle explain CDR_ID``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import pandas as pd

from .accounting_periods import parse_period, with_carried
from .agreements import AgreementBook
from .cdrs import MICRO_KWH_DECIMALS
from .minor import format_minor
from .split import COMPONENTS, split


def explain_cdr(
    cdrs: pd.DataFrame,
    book: AgreementBook,
    cdr_id: str,
    closes: Mapping[str, datetime] | None = None,
    carried: pd.DataFrame | None = None,
) -> dict:
    """A plain dict: the CDR's components (net/VAT), the agreements applied and every line, or the rejection.
    With ``carried`` (the closing runs' rejections, as :func:`settlement.core.run.settle` takes them) a CDR
    rejected by closing runs is explained as the next open period tries it."""
    row = cdrs[cdrs["cdr_id"].astype(str) == cdr_id]
    if row.empty:
        raise KeyError(f"no CDR {cdr_id}")
    row = row.head(1).reset_index(drop=True)
    if carried is not None and closes:
        after_last_close = max(parse_period(k) for k in closes).next()
        row = with_carried(row, carried, after_last_close.key, closes)
    result = split(row, book, closes=closes)
    currency = str(row["currency"].iloc[0])

    def money(v) -> str:
        return format_minor(int(v), currency)

    components = {}
    for c in COMPONENTS:
        if f"{c}_excl" in row.columns:
            excl, incl = int(row[f"{c}_excl"].iloc[0]), int(row[f"{c}_incl"].iloc[0])
            components[c] = {"net": money(excl), "vat": money(incl - excl)}
    total_excl, total_incl = int(row["total_excl"].iloc[0]), int(row["total_incl"].iloc[0])
    out: dict = {
        "cdr_id": cdr_id,
        "currency": currency,
        "total": {
            "net": money(total_excl),
            "vat": money(total_incl - total_excl),
            "gross": money(total_incl),
        },
        "components": components,
        "energy_kwh": f"{Decimal(int(row['energy_micro_kwh'].iloc[0])).scaleb(-MICRO_KWH_DECIMALS):f}",
    }
    if len(result.rejected):
        out["rejected"] = str(result.rejected["reason"].iloc[0])
        out["settlement_period"] = str(result.rejected["settlement_period"].iloc[0])
        out["first_rejected_in"] = str(result.rejected["first_rejected_in"].iloc[0])
        return out
    lines = result.lines
    out["settlement_period"] = str(lines["settlement_period"].iloc[0])
    out["is_adjustment"] = bool(lines["is_adjustment"].iloc[0])
    out["lines"] = [
        {
            "kind": str(r.kind),
            "party": str(r.party),
            "counterparty": str(r.counterparty),
            "net": money(r.net_minor),
            "vat": money(r.vat_minor),
            "gross": money(r.gross_minor),
            "agreement": f"{r.agreement_id}@v{r.agreement_version}",
        }
        for r in lines.itertuples(index=False)
    ]
    out["rounding"] = "derived lines rounded half-up once; cpo_retained is the exact remainder (odd cent)"
    return out
