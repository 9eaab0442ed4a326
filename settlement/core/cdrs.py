"""CDR input: from Decimal CDR rows (as the database / OCPI give them) to the minor-unit table the split reads.

Decimal-side columns (:data:`DECIMAL_COLUMNS`): ``cdr_id, cpo, emsp, location_id, country, currency,
end_date_time`` (aware), optional ``created_at`` (aware), ``total_energy`` (kWh), ``total_cost_excl_vat``,
``total_cost_incl_vat``, optional per component ``total_{energy,time,parking,fixed}_cost_{excl,incl}_vat``,
optional ``is_credit`` and ``credit_of``, optional ``emsp_side`` (a CDR the hub settles as its token's eMSP only:
:mod:`settlement.core.split`). Amounts are Decimal (or str/int), never float.

Conversion rules (documented because they are the only non-identity steps):

* money -> int64 minor units of the row's currency, exactly (:func:`settlement.core.minor.to_minor`); an amount
  with more decimals than the currency has raises, it is never rounded here;
* energy kWh -> int64 micro-kWh (millionths of a kWh), exactly: a CDR's quantities have 6 decimals (what the hub
  stores), so ``per_kwh x kWh`` is exact before the split's one rounding; more than 6 decimals raises;
* credit CDRs: amounts are made negative (OCPI 2.2.1 sends them negative; a positive amount on a credit
  CDR is taken as its magnitude).

This loop is per row (Decimal objects); for millions of CDRs, build the minor-unit table directly with
integer columns (see ``bench/bench_settlement.py``).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from kernel.money import to_decimal

from .minor import from_minor, to_minor
from .split import AMOUNT_COLUMNS, COMPONENTS, KEY_COLUMNS

_DECIMAL_OF = {
    "total_excl": "total_cost_excl_vat",
    "total_incl": "total_cost_incl_vat",
    **{f"{c}_{s}": f"total_{c}_cost_{s}_vat" for c in COMPONENTS for s in ("excl", "incl")},
}
DECIMAL_COLUMNS = (*KEY_COLUMNS, "end_date_time", "total_energy", *_DECIMAL_OF.values())


MICRO_KWH_DECIMALS = 6
"""An energy is carried in millionths of a kWh: the 6 decimals a CDR's quantities have."""


def kwh_to_micro_kwh(kwh: Decimal | str | int) -> int:
    """Exact millionths of a kWh of an energy in kWh (at most 6 decimals; more raises, nothing is rounded)."""
    value = to_decimal(kwh).scaleb(MICRO_KWH_DECIMALS)
    if value != value.to_integral_value():
        raise ValueError(f"energy {kwh} kWh has more than {MICRO_KWH_DECIMALS} decimals")
    return int(value)


def prepare_cdrs(cdrs: pd.DataFrame) -> pd.DataFrame:
    """Decimal CDR table -> minor-unit CDR table for :func:`settlement.core.split.split`."""
    n = len(cdrs)
    out = pd.DataFrame({k: cdrs[k].astype(str).to_numpy(dtype=object) for k in KEY_COLUMNS})
    out["currency"] = out["currency"].str.strip().str.upper()
    out["end_date_time"] = pd.to_datetime(cdrs["end_date_time"].reset_index(drop=True))
    if "created_at" in cdrs.columns:
        out["created_at"] = pd.to_datetime(cdrs["created_at"].reset_index(drop=True))
    credit = (
        cdrs["is_credit"].fillna(False).astype(bool).to_numpy()
        if "is_credit" in cdrs.columns
        else np.zeros(n, dtype=bool)
    )
    currencies = out["currency"].to_numpy()
    out["energy_micro_kwh"] = np.array(
        [kwh_to_micro_kwh(v) for v in cdrs["total_energy"]]
        if "total_energy" in cdrs.columns
        else np.zeros(n),
        dtype=np.int64,
    )
    for minor_name in AMOUNT_COLUMNS:
        dec_name = _DECIMAL_OF[minor_name]
        if dec_name not in cdrs.columns:
            out[minor_name] = np.zeros(n, dtype=np.int64)
            continue
        values = [
            0 if v is None or (isinstance(v, float) and np.isnan(v)) else to_minor(v, c)
            for v, c in zip(cdrs[dec_name], currencies, strict=True)
        ]
        arr = np.array(values, dtype=np.int64)
        out[minor_name] = np.where(credit, -np.abs(arr), arr)
    out["is_credit"] = credit
    if "emsp_side" in cdrs.columns:
        out["emsp_side"] = cdrs["emsp_side"].fillna(False).astype(bool).to_numpy()
    out["credit_of"] = (
        cdrs["credit_of"].reset_index(drop=True).astype(object).where(credit, None)
        if "credit_of" in cdrs.columns
        else None
    )
    return out


def with_decimals(lines: pd.DataFrame) -> pd.DataFrame:
    """A copy of a lines-like table with Decimal ``net``, ``vat``, ``gross`` next to the ``*_minor`` ints."""
    out = lines.copy()
    cur = out["currency"].astype(str).to_numpy()
    for name in ("net", "vat", "gross"):
        col = f"{name}_minor"
        if col in out.columns:
            out[name] = pd.Series(
                [from_minor(v, c) for v, c in zip(out[col].to_numpy(), cur, strict=True)],
                index=out.index,
                dtype=object,
            )
    return out
