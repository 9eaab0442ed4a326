"""The split: CDRs + agreements -> one line per CDR per party (pure, vectorised pandas/numpy, int64 minor units).

Input: a *minor-unit CDR table* (see :data:`REQUIRED_COLUMNS`; :func:`settlement.core.cdrs.prepare_cdrs` builds it
from Decimal CDRs). Output: :class:`SplitResult` with ``lines`` and ``rejected``.

Lines per CDR (signed from the party's point of view; they sum to zero per CDR):

=================  ==========  =============  ==========================================================
kind               party       counterparty   amount
=================  ==========  =============  ==========================================================
emsp_owes_cpo      eMSP        CPO            minus the CDR total (net = total excl. VAT, VAT = CDR VAT)
cpo_retained       CPO         eMSP           the remainder: total - hub fee - site host share
hub_fee            hub         CPO            the hub fee and its own VAT (rate of the CDR's country)
site_host_share    site host   CPO            the share (only where a site host agreement is in force)
=================  ==========  =============  ==========================================================

Invariant: ``cpo_retained + hub_fee + site_host_share == CDR total`` in net, VAT and gross, exactly.

**eMSP side only** (``emsp_side`` true: a CDR an external CPO posted to the hub as the eMSP of the token, issue 14
item 4): the hub is not that CPO's hub and hosts none of its locations, so no hub fee and no site host share
apply, whatever agreements are in force (a hub fee for every CPO, ``*``, is the hosted CPOs'), and none is
missing: the CDR yields two lines, ``emsp_owes_cpo`` and ``cpo_retained`` (the CPO keeps the whole total). It
still needs the roaming agreement of its eMSP and CPO (else ``no_roaming_agreement``, carried forward like any).

VAT: the CDR's VAT is the sum of its components' VAT (energy, time, parking, fixed, and any remainder the
components don't explain), carried as given, never recomputed. The hub fee's VAT is its own rate. The site
host share carries the energy component's VAT pro rata (or its agreement's own rate).

Discounts: a CDR's total may be below the sum of its components (OCPI ``max_price`` caps the total; the
component totals are before the cap). Such a CDR settles; a share of the energy revenue uses the energy
component scaled by ``total / sum of components`` (excl. VAT and VAT each). A CDR whose total is below its
components on one side and above them on the other (excl. vs incl. VAT) contradicts itself and is rejected
(``total_contradicts_components``).

Rounding (where the odd cent goes): every derived line (hub fee, its VAT, site host share, its VAT) is an
exact fraction rounded once, half-up to the currency's increment (:func:`kernel.money.round_amount`
semantics via :func:`settlement.core.minor.round_half_up`). The CPO's retained line is the exact remainder, so
any rounding difference — the odd cent — stays with the CPO, never appears or disappears. Credit CDRs are
split on their magnitudes and negated, so a credit mirrors its original to the cent.

Which agreements: those in force at the CDR's ``end_date_time`` (or the start of its service period, with
``pick_basis="period_start"``). A CDR that settles in a later period than its service period (a late CDR, a
credit after the close, a rejection carried forward) and that those terms cannot split (no roaming or hub fee
agreement, no hub VAT rate, a site host currency mismatch) is split with the terms in force at the start of
the period it settles in: agreements cannot start inside a closed period, so without this a CDR rejected for
a missing agreement would stay rejected for ever. A credit CDR uses, in that case, the start of the period
its original settled in (``terms_month``), so it mirrors the original's split even after the terms changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from kernel.money import minor_units

from .accounting_periods import (
    NOT_CARRIED,
    assign_periods,
    epoch_ns,
    month_index,
    month_keys,
    period_start_seconds,
    utc_column,
)
from .agreements import ALL_CPOS, AgreementBook, HubFeeAgreement, Kind, SiteHostAgreement
from .minor import exact, round_half_up, rounding_step, scale_for, scaled
from .resolve import KeyCoder, lookup, seconds

PickBasis = Literal["end_date_time", "period_start"]
"""The instant an agreement must be in force at: the CDR's end, or the start of its service period."""

KEY_COLUMNS = ("cdr_id", "cpo", "emsp", "location_id", "country", "currency")
COMPONENTS = ("energy", "time", "parking", "fixed")
AMOUNT_COLUMNS = (
    "total_excl",
    "total_incl",
    *tuple(f"{c}_{s}" for c in COMPONENTS for s in ("excl", "incl")),
)
REQUIRED_COLUMNS = (*KEY_COLUMNS, "end_date_time", "energy_micro_kwh", "total_excl", "total_incl")
"""Minor-unit CDR table. Amounts are int64 minor units of ``currency`` (credit CDRs negative);
``energy_micro_kwh`` is the CDR's energy exactly, in int64 millionths of a kWh; ``end_date_time`` aware UTC.
Optional: the component columns in :data:`AMOUNT_COLUMNS` (missing = 0), ``created_at`` (aware UTC),
``is_credit`` (bool), ``credit_of``, ``emsp_side`` (bool: see the module docstring), and for rejections carried forward (set by
:func:`settlement.core.run.settle` from the closing runs' rejections) ``carried_until`` and
``first_rejected_in``: int64 month indexes (``year * 12 + month - 1``; -1 = none), see
:func:`settlement.core.accounting_periods.settlement_months`; ``terms_month`` (int64 month index, -1 = none):
for a credit CDR, the month its original settles in
(:func:`settlement.core.accounting_periods.with_credit_terms`)."""

LINE_KINDS = ("emsp_owes_cpo", "cpo_retained", "hub_fee", "site_host_share")
ROLES = ("emsp", "cpo", "hub", "site_host")
LINE_COLUMNS = (
    "settlement_period",
    "service_period",
    "cdr_id",
    "line_no",
    "kind",
    "party",
    "role",
    "counterparty",
    "counterparty_role",
    "currency",
    "net_minor",
    "vat_minor",
    "gross_minor",
    "agreement_id",
    "agreement_version",
    "is_adjustment",
    "adjusts_period",
    "adjusts_cdr_id",
)
REJECT_REASONS = (
    "bad_sign",
    "negative_vat",
    "total_contradicts_components",
    "no_roaming_agreement",
    "no_hub_fee_agreement",
    "no_hub_vat_rate",
    "site_host_currency_mismatch",
)
AGREEMENT_REASONS = REJECT_REASONS[3:]
"""Rejections by the agreements in force (not by the CDR's content): other terms may split the CDR."""
REJECTED_COLUMNS = ("cdr_id", "reason", "service_period", "settlement_period", "first_rejected_in")
"""A rejected CDR: why, its service and settlement period, and the period that first rejected it."""


@dataclass(frozen=True)
class SplitResult:
    """Lines of the accepted CDRs, and the CDRs that could not be split with the reason why."""

    lines: pd.DataFrame
    rejected: pd.DataFrame
    parts: pd.DataFrame = field(repr=False)  # one row per input CDR: the wide form (used by explain/bench)


def _col(cdrs: pd.DataFrame, name: str) -> np.ndarray:
    if name in cdrs.columns:
        return cdrs[name].to_numpy(dtype=np.int64)
    return np.zeros(len(cdrs), dtype=np.int64)


def _with_dummy(values: list, fill) -> np.ndarray:
    """Parameter table with a trailing dummy row, so index -1 (no agreement) reads ``fill``."""
    return np.array(
        [*values, fill],
        dtype=object if any(isinstance(v, int) and abs(v) >= 2**62 for v in values) else np.int64,
    )


def compute_parts(
    cdrs: pd.DataFrame,
    book: AgreementBook,
    *,
    pick_basis: PickBasis = "end_date_time",
    at: np.ndarray | None = None,
) -> pd.DataFrame:
    """The wide split: one row per input CDR (same order), int64 minor units, signed like the CDR.
    Agreements are those in force at ``at`` (int64 seconds since the epoch per CDR) when given, else at the
    instant ``pick_basis`` names.

    Columns: ``total_net, total_vat, hub_net, hub_vat, host_net, host_vat, cpo_net, cpo_vat`` plus the
    agreement rows picked (``roaming_ix, hub_ix, host_ix``; -1 none) and ``reason_code`` (0 accepted, else
    ``1 + REJECT_REASONS.index(reason)``).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in cdrs.columns]
    if missing:
        raise ValueError(f"CDR table lacks columns {missing}")
    n = len(cdrs)
    is_credit = (
        cdrs["is_credit"].fillna(False).to_numpy(dtype=bool)
        if "is_credit" in cdrs.columns
        else np.zeros(n, dtype=bool)
    )
    emsp_side = (
        cdrs["emsp_side"].fillna(False).to_numpy(dtype=bool)
        if "emsp_side" in cdrs.columns
        else np.zeros(n, dtype=bool)
    )
    raw = {name: _col(cdrs, name) for name in AMOUNT_COLUMNS}
    mkwh_raw = _col(cdrs, "energy_micro_kwh")

    # --- signs and magnitudes -------------------------------------------------------------------
    stacked = np.vstack(list(raw.values())) if n else np.zeros((len(raw), 0), dtype=np.int64)
    bad_sign = np.where(is_credit, (stacked > 0).any(axis=0), (stacked < 0).any(axis=0)) | (
        ~is_credit & (mkwh_raw < 0)
    )
    sign = np.where(is_credit, -1, 1).astype(np.int64)
    mag = {k: np.abs(v) for k, v in raw.items()}
    mkwh = np.abs(mkwh_raw)
    net = mag["total_excl"]
    vat = mag["total_incl"] - net
    comp_vat = {c: mag[f"{c}_incl"] - mag[f"{c}_excl"] for c in COMPONENTS}
    negative_vat = (vat < 0) | np.logical_or.reduce([v < 0 for v in comp_vat.values()])
    comp_net_sum = sum(mag[f"{c}_excl"] for c in COMPONENTS)
    comp_vat_sum = sum(comp_vat.values())
    other_net = net - comp_net_sum
    other_gross = other_net + vat - comp_vat_sum
    # A total below its components is a discount (max_price caps the total, not the components); above them,
    # a charge the components don't explain (min_price, an unlisted fee). Both at once (one side excl. VAT,
    # the other incl. VAT) is a CDR that contradicts itself.
    contradicts = ((other_net < 0) & (other_gross > 0)) | ((other_net > 0) & (other_gross < 0))
    energy = _EnergyRevenue(
        mag["energy_excl"],
        comp_vat["energy"],
        *_discount(net, comp_net_sum),
        *_discount(vat, comp_vat_sum),
    )

    # --- agreement lookup -----------------------------------------------------------------------
    if at is None:
        end = utc_column(cdrs["end_date_time"], "end_date_time")
        if pick_basis == "period_start":
            at = period_start_seconds(month_index(end))
        else:
            at = np.floor_divide(epoch_ns(end), 10**9)
    at = np.asarray(at, dtype=np.int64)
    coder = KeyCoder({k: cdrs[k] for k in ("cpo", "emsp", "location_id", "country", "currency")})

    def pick(kind: Kind, names: tuple[str, ...]) -> np.ndarray:
        """Per CDR, the index of the interval of ``kind`` in force for its ``names`` scope, or -1."""
        scopes, starts, ends = _interval_table(book, kind)
        rows, vals = coder.combined(names, scopes)
        return lookup(rows, at, vals, starts, ends)

    roaming_ix = pick("roaming", ("emsp", "cpo"))
    hub_intervals = book.intervals("hub_fee")
    hubs = [a for a, _s, _e in hub_intervals]
    hub_specific = pick("hub_fee", ("cpo", "currency"))
    # default hub fee (cpo "*"): match on currency only
    dflt = [i for i, (a, _s, _e) in enumerate(hub_intervals) if a.cpo == ALL_CPOS]
    rows_c, vals_c = coder.combined(("currency",), [(hub_intervals[i][0].currency,) for i in dflt])
    hub_dflt = lookup(
        rows_c, at, vals_c, [hub_intervals[i][1] for i in dflt], [hub_intervals[i][2] for i in dflt]
    )
    hub_dflt = np.where(hub_dflt >= 0, np.array([*dflt, -1], dtype=np.int64)[hub_dflt], -1)
    hub_ix = np.where(emsp_side, -1, np.where(hub_specific >= 0, hub_specific, hub_dflt))
    hosts = [a for a, _s, _e in book.intervals("site_host")]
    host_ix = np.where(emsp_side, -1, pick("site_host", ("cpo", "location_id")))

    # --- per-currency rounding ------------------------------------------------------------------
    cur_codes, cur_uniques = coder.codes("currency"), coder.uniques("currency")
    steps = np.array([rounding_step(c) for c in cur_uniques] + [1], dtype=np.int64)[cur_codes]

    # --- hub fee --------------------------------------------------------------------------------
    hub_net, hub_vat, no_vat_rate = _hub_fee(hubs, hub_ix, net, mkwh, steps, coder)

    # --- site host share ------------------------------------------------------------------------
    host_net, host_vat, cur_mismatch = _site_host(book, hosts, host_ix, energy, mkwh, steps, coder)

    # reason codes: 0 accepted, else 1 + index into REJECT_REASONS (the first failing check wins)
    reason_code = np.zeros(n, dtype=np.int8)
    no_hub_fee = (hub_ix < 0) & ~emsp_side
    checks = [bad_sign, negative_vat, contradicts, roaming_ix < 0, no_hub_fee, no_vat_rate, cur_mismatch]
    for code in range(len(checks), 0, -1):
        reason_code[checks[code - 1]] = code
    cpo_net = net - hub_net - host_net
    cpo_vat = vat - hub_vat - host_vat
    return pd.DataFrame(
        {
            "total_net": sign * net,
            "total_vat": sign * vat,
            "hub_net": sign * hub_net,
            "hub_vat": sign * hub_vat,
            "host_net": sign * host_net,
            "host_vat": sign * host_vat,
            "cpo_net": sign * cpo_net,
            "cpo_vat": sign * cpo_vat,
            "roaming_ix": roaming_ix,
            "hub_ix": hub_ix,
            "host_ix": host_ix,
            "is_credit": is_credit,
            "reason_code": reason_code,
        },
        index=cdrs.index,
        copy=False,  # one block per column: no consolidating copy of ten million rows
    )


def _interval_table(book: AgreementBook, kind: Kind) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """The scopes of one kind's intervals and their ``[start, end)`` in int64 seconds (open end: the
    lookup's far future), built once per book: a chunked split asks for them once per chunk."""

    def build() -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
        intervals = book.intervals(kind)
        return (
            [a.scope() for a, _s, _e in intervals],
            np.array([seconds(s) for _a, s, _e in intervals], dtype=np.int64),
            np.array([seconds(e) for _a, _s, e in intervals], dtype=np.int64),
        )

    return book.derived(f"intervals:{kind}", build)


def _discount(total: np.ndarray, components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The factor ``num / den`` a component keeps after the CDR's discount: ``total / sum of components`` where
    the total is below them (a ``max_price`` cap), else ``1 / 1`` (a charge above them is not a component's)."""
    capped = total < components
    return np.where(capped, total, 1), np.where(capped, components, 1)


@dataclass(frozen=True)
class _EnergyRevenue:
    """The energy component (magnitudes, minor units) and the discount factors of its net and its VAT: the
    CPO's energy revenue is ``net * net_num / net_den`` excl. VAT and ``vat * vat_num / vat_den`` VAT."""

    net: np.ndarray
    vat: np.ndarray
    net_num: np.ndarray
    net_den: np.ndarray
    vat_num: np.ndarray
    vat_den: np.ndarray


def _hub_fee(
    hubs: list[HubFeeAgreement],
    hub_ix: np.ndarray,
    net: np.ndarray,
    mkwh: np.ndarray,
    steps: np.ndarray,
    coder: KeyCoder,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hub fee net and VAT per CDR (magnitudes), and where the CDR's country has no VAT rate."""
    scale = scale_for(
        [a.percentage for a in hubs]
        + [a.fixed_per_session.scaleb(minor_units(a.currency)) for a in hubs]
        + [a.per_kwh.scaleb(minor_units(a.currency) - 6) for a in hubs]
        + [
            x.scaleb(minor_units(a.currency))
            for a in hubs
            for x in (a.minimum_per_session, a.maximum_per_session)
            if x is not None
        ]
    )
    mu = [minor_units(a.currency) for a in hubs]
    pct = _with_dummy([scaled(a.percentage, scale) for a in hubs], 0)[hub_ix]
    fixed = _with_dummy(
        [scaled(a.fixed_per_session.scaleb(m), scale) for a, m in zip(hubs, mu, strict=True)], 0
    )
    per_mkwh = _with_dummy([scaled(a.per_kwh.scaleb(m - 6), scale) for a, m in zip(hubs, mu, strict=True)], 0)
    lo = _with_dummy(
        [
            scaled(a.minimum_per_session.scaleb(m), scale) if a.minimum_per_session is not None else 0
            for a, m in zip(hubs, mu, strict=True)
        ],
        0,
    )[hub_ix]
    hi = _with_dummy(
        [
            scaled(a.maximum_per_session.scaleb(m), scale) if a.maximum_per_session is not None else -1
            for a, m in zip(hubs, mu, strict=True)
        ],
        -1,
    )[hub_ix]
    num = exact((net, pct), (1, fixed[hub_ix]), (mkwh, per_mkwh[hub_ix]))
    num = np.where(num < lo, lo, num)
    num = np.where((hi >= 0) & (num > hi), hi, num)
    fee = round_half_up(num, 10**scale, steps)

    countries = coder.uniques("country")
    vat_scale = scale_for([r for a in hubs for r in a.vat_rates.values()])
    table = np.full((len(hubs) + 1, len(countries) + 1), -1, dtype=np.int64)
    for i, a in enumerate(hubs):
        for j, country in enumerate(countries):
            rate = a.vat_rates.get(str(country).strip().upper())
            if rate is not None:
                table[i, j] = scaled(rate, vat_scale)
    rate_num = table[hub_ix, coder.codes("country")]
    missing = (hub_ix >= 0) & (rate_num < 0)
    rate_num = np.where(rate_num < 0, 0, rate_num)
    fee_vat = round_half_up(exact((fee, rate_num)), 10**vat_scale, steps)
    fee = np.where(hub_ix >= 0, fee, 0)
    fee_vat = np.where(hub_ix >= 0, fee_vat, 0)
    return fee.astype(np.int64), fee_vat.astype(np.int64), missing


def _site_host_params(hosts: list[SiteHostAgreement]) -> dict:
    """The site host agreements' rates as exact integer tables (a trailing dummy row for "none")."""
    scale = scale_for(
        [a.share_percentage for a in hosts]
        + [
            a.per_kwh.scaleb(minor_units(a.currency) - 6)
            for a in hosts
            if a.per_kwh is not None and a.currency
        ]
    )
    vat_scale = scale_for([a.vat_rate for a in hosts])
    return {
        "scale": scale,
        "vat_scale": vat_scale,
        "pct": _with_dummy([scaled(a.share_percentage, scale) for a in hosts], 0),
        "per_mkwh": _with_dummy(
            [
                scaled(a.per_kwh.scaleb(minor_units(a.currency) - 6), scale)
                if a.per_kwh is not None and a.currency
                else 0
                for a in hosts
            ],
            0,
        ),
        "carry": _with_dummy([1 if a.vat_rate is None else 0 for a in hosts], 1).astype(bool),
        "rate": _with_dummy([scaled(a.vat_rate, vat_scale) for a in hosts], 0),
    }


def _site_host(
    book: AgreementBook,
    hosts: list[SiteHostAgreement],
    host_ix: np.ndarray,
    energy: _EnergyRevenue,
    mkwh: np.ndarray,
    steps: np.ndarray,
    coder: KeyCoder,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Site host share net and VAT per CDR (magnitudes), and where a per-kWh rate's currency differs.

    A percentage share is of the energy revenue after the CDR's discount (``energy.net * net_num / net_den``);
    carried VAT is the discounted energy VAT pro rata: ``vat' * share / net'``. Each is one exact fraction,
    rounded once."""
    p = book.derived("site_host_params", lambda: _site_host_params(hosts))
    scale, vat_scale = p["scale"], p["vat_scale"]
    pct, per_mkwh = p["pct"][host_ix], p["per_mkwh"][host_ix]
    # (net * pct * num / den + mkwh * per_mkwh) / 10**scale
    #   == (net * pct * num + mkwh * per_mkwh * den) / (10**scale * den)
    share_num = exact((exact((energy.net, pct)), energy.net_num), (exact((mkwh, per_mkwh)), energy.net_den))
    share = round_half_up(share_num, exact((energy.net_den, 10**scale)), steps)

    carry = p["carry"][host_ix]
    rate = p["rate"][host_ix]
    # vat' * share / net' == vat * vat_num * share * net_den / (vat_den * net * net_num)
    revenue = exact((exact((energy.net, energy.net_num)), energy.vat_den))
    den = np.where(revenue > 0, revenue, 1)
    carried_num = exact((exact((energy.vat, energy.vat_num)), exact((share, energy.net_den))))
    carried = np.where(revenue > 0, round_half_up(carried_num, den, steps), 0)
    own = round_half_up(exact((share, rate)), 10**vat_scale, steps)
    share_vat = np.where(carry, carried, own)

    # per-kWh agreements are in one currency: a CDR in another currency cannot use them
    cur_uniques = coder.uniques("currency")
    host_cur = [a.currency if a.per_kwh is not None else None for a in hosts]
    needs = np.array([c is not None for c in host_cur] + [False], dtype=bool)[host_ix]
    wanted = cur_uniques.get_indexer(pd.Index([c or "" for c in host_cur], dtype=object)) if hosts else []
    wanted_codes = np.array([*list(wanted), -2], dtype=np.int64)[host_ix]
    mismatch = (host_ix >= 0) & needs & (wanted_codes != coder.codes("currency"))

    share = np.where(host_ix >= 0, share, 0)
    share_vat = np.where(host_ix >= 0, share_vat, 0)
    return share.astype(np.int64), share_vat.astype(np.int64), mismatch


def split(
    cdrs: pd.DataFrame,
    book: AgreementBook,
    *,
    closes: Mapping[str, datetime] | None = None,
    pick_basis: PickBasis = "end_date_time",
) -> SplitResult:
    """Split every CDR among its parties. Pure: same input -> same output, no I/O, no clock.

    ``closes`` (period key -> closing instant) decides each CDR's settlement period (see
    :mod:`settlement.core.accounting_periods`); without it every CDR settles in its service period.
    """
    cdrs = cdrs.reset_index(drop=True)
    parts = compute_parts(cdrs, book, pick_basis=pick_basis)
    periods = assign_periods(
        utc_column(cdrs["end_date_time"], "end_date_time"),
        utc_column(cdrs["created_at"], "created_at") if "created_at" in cdrs.columns else None,
        parts["is_credit"].to_numpy(),
        cdrs["credit_of"] if "credit_of" in cdrs.columns else None,
        closes,
        _month_column(cdrs, "carried_until"),
    )
    parts = _with_settlement_terms(cdrs, book, parts, periods)
    code = parts["reason_code"].to_numpy()
    ok = np.flatnonzero(code == 0)
    bad = np.flatnonzero(code != 0)
    settle_month = periods["settlement_month"].to_numpy()
    first = _month_column(cdrs, "first_rejected_in")
    first = settle_month if first is None else np.where(first == NOT_CARRIED, settle_month, first)
    rejected = pd.DataFrame(
        {
            "cdr_id": _take(cdrs["cdr_id"], bad),
            "reason": np.asarray(REJECT_REASONS, dtype=object)[code[bad] - 1],
            "service_period": _take(periods["service_period"], bad),
            "settlement_period": _take(periods["settlement_period"], bad),
            "first_rejected_in": month_keys(first[bad]),
        },
        columns=list(REJECTED_COLUMNS),
    )
    lines = _long_lines(cdrs, parts, periods, ok, book)
    return SplitResult(lines=lines, rejected=rejected, parts=parts)


def _month_column(cdrs: pd.DataFrame, name: str) -> np.ndarray | None:
    """An optional month-index column as int64 (missing values: :data:`NOT_CARRIED`), or None."""
    if name not in cdrs.columns:
        return None
    return pd.to_numeric(cdrs[name]).fillna(NOT_CARRIED).to_numpy(dtype=np.int64)


def _with_settlement_terms(
    cdrs: pd.DataFrame, book: AgreementBook, parts: pd.DataFrame, periods: pd.DataFrame
) -> pd.DataFrame:
    """``parts`` where every CDR that settles after its service period and that the terms at its instant
    reject for an agreement reason is split again with the terms in force at the start of its settlement
    period (see the module docstring)."""
    code = parts["reason_code"].to_numpy()
    agreement_codes = [1 + REJECT_REASONS.index(r) for r in AGREEMENT_REASONS]
    settle_month = periods["settlement_month"].to_numpy()
    retry = np.flatnonzero(
        np.isin(code, agreement_codes) & (settle_month > periods["service_month"].to_numpy())
    )
    if not retry.size:
        return parts
    month = settle_month[retry]
    terms = _month_column(cdrs, "terms_month")
    if terms is not None:  # a credit: the period its original settled in, when that is a later one too
        original = terms[retry]
        month = np.where(original > periods["service_month"].to_numpy()[retry], original, month)
    again = compute_parts(cdrs.iloc[retry].reset_index(drop=True), book, at=period_start_seconds(month))
    out = parts.copy()
    for column in out.columns:
        values = out[column].to_numpy().copy()
        values[retry] = again[column].to_numpy()
        out[column] = values
    return out


def _take(series: pd.Series, positions: np.ndarray) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """Rows at ``positions`` keeping the column's dtype (categoricals and strings stay cheap)."""
    return series.take(positions).array


def _long_lines(cdrs, parts, periods, ok, book: AgreementBook) -> pd.DataFrame:
    roaming = book.intervals("roaming")
    hubs = book.intervals("hub_fee")
    hosts = book.intervals("site_host")

    roaming_ix = parts["roaming_ix"].to_numpy()[ok]
    hub_ix_all = parts["hub_ix"].to_numpy()[ok]
    with_hub = np.flatnonzero(hub_ix_all >= 0)  # all but the eMSP-side CDRs
    hub_ix = hub_ix_all[with_hub]
    host_ix_all = parts["host_ix"].to_numpy()[ok]
    with_host = np.flatnonzero(host_ix_all >= 0)
    host_ix = host_ix_all[with_host]

    # party dictionary shared by party / counterparty
    cpo_codes, cpo_uni = pd.factorize(cdrs["cpo"].iloc[ok])
    emsp_codes, emsp_uni = pd.factorize(cdrs["emsp"].iloc[ok])
    hub_parties = [a.hub for a, _s, _e in hubs]
    host_parties = [a.site_host for a, _s, _e in hosts]
    parties = pd.Index(
        sorted(set(map(str, cpo_uni)) | set(map(str, emsp_uni)) | set(hub_parties) | set(host_parties)),
        dtype=object,
    )
    cpo_p = parties.get_indexer(pd.Index(list(map(str, cpo_uni)), dtype=object))[cpo_codes]
    emsp_p = parties.get_indexer(pd.Index(list(map(str, emsp_uni)), dtype=object))[emsp_codes]
    hub_p = np.array([*parties.get_indexer(pd.Index(hub_parties, dtype=object)), -1], dtype=np.int64)[hub_ix]
    host_p = np.array([*parties.get_indexer(pd.Index(host_parties, dtype=object)), -1], dtype=np.int64)[
        host_ix
    ]

    agreement_ids = pd.Index(sorted({a.agreement_id for a in book.agreements}), dtype=object)

    def ag(intervals, idx):
        ids = agreement_ids.get_indexer(pd.Index([a.agreement_id for a, _s, _e in intervals], dtype=object))
        versions = [a.version for a, _s, _e in intervals]
        return (np.array([*ids, -1], dtype=np.int64)[idx], np.array([*versions, 0], dtype=np.int64)[idx])

    r_id, r_ver = ag(roaming, roaming_ix)
    h_id, h_ver = ag(hubs, hub_ix)
    s_id, s_ver = ag(hosts, host_ix)

    p = {
        k: parts[k].to_numpy()[ok]
        for k in (
            "total_net",
            "total_vat",
            "hub_net",
            "hub_vat",
            "host_net",
            "host_vat",
            "cpo_net",
            "cpo_vat",
        )
    }
    n = len(ok)
    has_hub = (hub_ix_all >= 0).astype(np.int64)
    has_host = host_ix_all >= 0
    count = 2 + has_hub + has_host.astype(np.int64)
    start = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(count[:-1], out=start[1:])
    total = int(count.sum())
    slots = (start, start + 1, start[with_hub] + 2, start[with_host] + 2 + has_hub[with_host])

    def interleave(values, dtype) -> np.ndarray:
        """Lines of one CDR next to each other: values[k] goes to line k of every CDR (k = 2: CDRs with a hub
        fee, all but the eMSP-side ones; k = 3: with a site host)."""
        out = np.empty(total, dtype=dtype)
        for slot, v in zip(slots, values, strict=True):
            out[slot] = v
        return out

    src = interleave([ok, ok, ok[with_hub], ok[with_host]], np.int64)
    line_no = interleave([0, 1, 2, 3], np.int8)
    party = interleave([emsp_p, cpo_p, hub_p, host_p], np.int64)
    counterparty = interleave([cpo_p, emsp_p, cpo_p[with_hub], cpo_p[with_host]], np.int64)
    net = interleave(
        [-p["total_net"], p["cpo_net"], p["hub_net"][with_hub], p["host_net"][with_host]], np.int64
    )
    vat = interleave(
        [-p["total_vat"], p["cpo_vat"], p["hub_vat"][with_hub], p["host_vat"][with_host]], np.int64
    )
    ag_id = interleave([r_id, r_id, h_id, s_id], np.int64)
    ag_ver = interleave([r_ver, r_ver, h_ver, s_ver], np.int64)
    role_codes = line_no
    cp_role_codes = np.array([1, 0, 1, 1], dtype=np.int8)[line_no]

    def cat(codes, categories):
        return pd.Categorical.from_codes(
            np.asarray(codes), categories=pd.Index(list(categories), dtype=object)
        )

    def take_cat(series: pd.Series) -> pd.Categorical:
        codes, uniques = pd.factorize(series)
        return cat(codes[src], [str(u) for u in uniques])

    credit_of = periods["adjusts_cdr_id"]
    return pd.DataFrame(
        {
            "settlement_period": _take(periods["settlement_period"], src),
            "service_period": _take(periods["service_period"], src),
            "cdr_id": _take(cdrs["cdr_id"], src),
            "line_no": line_no,
            "kind": cat(line_no, LINE_KINDS),
            "party": cat(party, parties),
            "role": cat(role_codes, ROLES),
            "counterparty": cat(counterparty, parties),
            "counterparty_role": cat(cp_role_codes, ROLES),
            "currency": take_cat(cdrs["currency"]),
            "net_minor": net,
            "vat_minor": vat,
            "gross_minor": net + vat,
            "agreement_id": cat(ag_id, agreement_ids),
            "agreement_version": ag_ver,
            "is_adjustment": periods["is_adjustment"].to_numpy()[src],
            "adjusts_period": _take(periods["adjusts_period"], src),
            "adjusts_cdr_id": _take(credit_of, src),
        },
        copy=False,  # one block per column: no consolidating copy of tens of millions of lines
    )
