"""Shared builders for the settlement tests: an agreement book, hypothesis strategies for CDR tables, and an
independent scalar reference split (exact fractions + kernel.money.round_amount + agreements.in_force)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pandas as pd
from hypothesis import strategies as st

from kernel.money import minor_units, round_amount
from settlement.core.agreements import (
    ALL_CPOS,
    AgreementBook,
    HubFeeAgreement,
    RoamingAgreement,
    SiteHostAgreement,
    in_force,
)
from settlement.core.split import COMPONENTS

CPOS = ("NL*CPA", "DE*CPB", "BE*CPC")
EMSPS = ("NL*MSA", "DE*MSB")
LOCATIONS = ("LOC1", "LOC2", "LOC3", "LOC4")
COUNTRIES = ("NL", "DE", "BE")
CURRENCIES = ("EUR", "JPY", "BHD")


def make_book() -> AgreementBook:
    """A book with version changes inside October 2026, a CPO-specific hub fee, both site host modes."""
    items = []
    for e in EMSPS:
        for c in CPOS[:2]:
            items.append(
                RoamingAgreement(agreement_id=f"R-{e}-{c}", version=1, valid_from="2026-01-01", emsp=e, cpo=c)
            )
    items.append(
        RoamingAgreement(
            agreement_id="R-late", version=1, valid_from="2026-10-10", emsp=EMSPS[0], cpo=CPOS[2]
        )
    )
    vat = {"NL": "0.21", "DE": "0.19", "BE": "0.21"}
    items += [
        HubFeeAgreement(
            agreement_id="HUB-EUR",
            version=1,
            valid_from="2026-01-01",
            currency="EUR",
            percentage="0.015",
            fixed_per_session="0.05",
            per_kwh="0.0075",
            minimum_per_session="0.10",
            maximum_per_session="2.50",
            vat_rates=vat,
        ),
        HubFeeAgreement(
            agreement_id="HUB-EUR",
            version=2,
            valid_from="2026-10-16",
            currency="EUR",
            percentage="0.0175",
            per_kwh="0.0033",
            minimum_per_session="0.07",
            vat_rates=vat,
        ),
        HubFeeAgreement(
            agreement_id="HUB-JPY",
            version=1,
            valid_from="2026-01-01",
            currency="JPY",
            percentage="0.02",
            fixed_per_session="7",
            vat_rates={"NL": "0.21", "DE": "0.19"},
        ),
        HubFeeAgreement(
            agreement_id="HUB-BHD",
            version=1,
            valid_from="2026-01-01",
            currency="BHD",
            percentage="0.0125",
            per_kwh="0.0015",
            maximum_per_session="0.250",
            vat_rates={"NL": "0.1", "DE": "0.1", "BE": "0.1"},
        ),
        HubFeeAgreement(
            agreement_id="HUB-CPA-EUR",
            version=1,
            valid_from="2026-10-01",
            cpo=CPOS[0],
            currency="EUR",
            percentage="0.01",
            vat_rates={"NL": "0.21", "DE": "0.19", "BE": "0"},
        ),
        SiteHostAgreement(
            agreement_id="SH-1",
            version=1,
            valid_from="2026-01-01",
            site_host="HOST*ONE",
            cpo=CPOS[0],
            location_id="LOC1",
            share_percentage="0.125",
        ),
        SiteHostAgreement(
            agreement_id="SH-1",
            version=2,
            valid_from="2026-10-20",
            site_host="HOST*ONE",
            cpo=CPOS[0],
            location_id="LOC1",
            share_percentage="0.0833",
        ),
        SiteHostAgreement(
            agreement_id="SH-2",
            version=1,
            valid_from="2026-01-01",
            site_host="HOST*TWO",
            cpo=CPOS[1],
            location_id="LOC2",
            per_kwh="0.0215",
            currency="EUR",
            vat_rate="0.19",
        ),
        SiteHostAgreement(
            agreement_id="SH-3",
            version=1,
            valid_from="2026-01-01",
            site_host="HOST*ONE",
            cpo=CPOS[0],
            location_id="LOC3",
            per_kwh="0.012",
            currency="EUR",
        ),
    ]
    return AgreementBook(items)


_MAX = {"EUR": 40_000, "JPY": 8_000, "BHD": 40_000}
OCT = datetime(2026, 10, 1, tzinfo=UTC)


@st.composite
def cdr_rows(draw, n_min: int = 1, n_max: int = 25, credit_share: bool = True):
    """A minor-unit CDR DataFrame: consistent components (energy/time/parking/fixed) and either an unexplained
    rest on top or a discount (a max_price cap: total excl. and incl. VAT each at most the components')."""
    n = draw(st.integers(n_min, n_max))
    rows = []
    for i in range(n):
        currency = draw(st.sampled_from(CURRENCIES))
        cap = _MAX[currency]
        comps = {}
        for c in COMPONENTS:
            excl = draw(st.integers(0, cap))
            vat = draw(st.integers(0, excl // 4 + 1))
            comps[c] = (excl, excl + vat)
        rest_excl = draw(st.integers(0, 50))
        rest_vat = draw(st.integers(0, 10))
        total_excl = sum(v[0] for v in comps.values()) + rest_excl
        total_incl = sum(v[1] for v in comps.values()) + rest_excl + rest_vat
        if draw(st.booleans()) and draw(st.booleans()):  # capped: 0 <= total_excl <= total_incl <= components
            total_excl = draw(st.integers(0, total_excl - rest_excl))
            total_incl = draw(st.integers(total_excl, max(total_excl, total_incl - rest_excl - rest_vat)))
        credit = credit_share and draw(st.booleans()) and draw(st.booleans())
        sign = -1 if credit else 1
        end = OCT + timedelta(seconds=draw(st.integers(-3 * 86400, 33 * 86400)))
        row = {
            "cdr_id": f"CDR{i:04d}",
            "cpo": draw(st.sampled_from(CPOS)),
            "emsp": draw(st.sampled_from(EMSPS)),
            "location_id": draw(st.sampled_from(LOCATIONS)),
            "country": draw(st.sampled_from(COUNTRIES)),
            "currency": currency,
            "end_date_time": end,
            "created_at": end + timedelta(hours=draw(st.integers(0, 24 * 40))),
            "energy_micro_kwh": draw(st.integers(0, 150_000_000)),
            "total_excl": sign * total_excl,
            "total_incl": sign * total_incl,
            "is_credit": credit,
            "credit_of": f"CDR{i:04d}-orig" if credit else None,
        }
        for c, (excl, incl) in comps.items():
            row[f"{c}_excl"], row[f"{c}_incl"] = sign * excl, sign * incl
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["end_date_time"] = pd.to_datetime(frame["end_date_time"], utc=True)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def dec(units: int, currency: str) -> Decimal:
    return Decimal(int(units)).scaleb(-minor_units(currency))


def _round(value: Fraction, currency: str) -> Decimal:
    """An exact fraction rounded once with kernel.money (through a Decimal far finer than any minor unit)."""
    return round_amount(Decimal(value.numerator) / Decimal(value.denominator), currency)


AGREEMENT_REASONS = (
    "no_roaming_agreement",
    "no_hub_fee_agreement",
    "no_hub_vat_rate",
    "site_host_currency_mismatch",
)


def reference_split(row: dict, book: AgreementBook, settles_from: datetime | None = None) -> dict | str:
    """Scalar reference: exact fractions and round_amount, magnitudes, sign applied at the end.

    A total below the sum of its components is a discount (OCPI 2.2.1 max_price: the session "will NOT cost
    more than this amount", the components stay before the cap): the energy revenue a share is taken of is the
    energy component times total / components, excl. VAT and VAT each. Below on one side and above on the
    other is a contradiction.

    Agreements are those in force at the CDR's end; ``settles_from`` (the start of a later period the CDR
    settles in) gives the terms used when those at its end reject it for an agreement reason (S2).

    Returns {kind: (net, vat, agreement_ref)} in Decimal, or the rejection reason (subset checked)."""
    at_end = _reference_at(row, book, row["end_date_time"].to_pydatetime())
    if settles_from is not None and isinstance(at_end, str) and at_end in AGREEMENT_REASONS:
        return _reference_at(row, book, settles_from)
    return at_end


def _reference_at(row: dict, book: AgreementBook, at: datetime) -> dict | str:
    cur = row["currency"]
    sign = -1 if row.get("is_credit") else 1
    net = dec(abs(row["total_excl"]), cur)
    vat = dec(abs(row["total_incl"]) - abs(row["total_excl"]), cur)
    kwh = Fraction(abs(row["energy_micro_kwh"]), 10**6)
    comp_net = sum((dec(abs(row.get(f"{c}_excl", 0)), cur) for c in COMPONENTS), Decimal(0))
    comp_gross = sum((dec(abs(row.get(f"{c}_incl", 0)), cur) for c in COMPONENTS), Decimal(0))
    rest_net, rest_gross = net - comp_net, net + vat - comp_gross
    if (rest_net < 0 < rest_gross) or (rest_gross < 0 < rest_net):
        return "total_contradicts_components"
    roaming = in_force(book.agreements, "roaming", (row["emsp"], row["cpo"]), at)
    if roaming is None:
        return "no_roaming_agreement"
    hub = in_force(book.agreements, "hub_fee", (row["cpo"], cur), at) or in_force(
        book.agreements, "hub_fee", (ALL_CPOS, cur), at
    )
    if hub is None:
        return "no_hub_fee_agreement"
    rate = hub.vat_rates.get(row["country"])
    if rate is None:
        return "no_hub_vat_rate"
    raw = Fraction(net * hub.percentage + hub.fixed_per_session) + Fraction(hub.per_kwh) * kwh
    if hub.minimum_per_session is not None:
        raw = max(raw, Fraction(hub.minimum_per_session))
    if hub.maximum_per_session is not None:
        raw = min(raw, Fraction(hub.maximum_per_session))
    fee = _round(raw, cur)
    fee_vat = round_amount(fee * rate, cur)
    out = {"hub_fee": (fee, fee_vat, hub.ref)}
    host = in_force(book.agreements, "site_host", (row["cpo"], row["location_id"]), at)
    host_net = host_vat = Decimal(0)
    if host is not None:
        if host.per_kwh is not None and host.currency != cur:
            return "site_host_currency_mismatch"
        e_net = Fraction(dec(abs(row["energy_excl"]), cur))
        e_vat = Fraction(dec(abs(row["energy_incl"]) - abs(row["energy_excl"]), cur))
        comp_vat = comp_gross - comp_net
        if net < comp_net:  # discounted: the energy revenue after the cap
            e_net = e_net * Fraction(net) / Fraction(comp_net)
        if vat < comp_vat:
            e_vat = e_vat * Fraction(vat) / Fraction(comp_vat)
        share = (
            e_net * Fraction(host.share_percentage)
            if host.share_percentage is not None
            else Fraction(host.per_kwh) * kwh
        )
        host_net = _round(share, cur)
        if host.vat_rate is None:
            host_vat = _round(e_vat * Fraction(host_net) / e_net, cur) if e_net else Decimal(0)
        else:
            host_vat = round_amount(host_net * host.vat_rate, cur)
        out["site_host_share"] = (host_net, host_vat, host.ref)
    out["emsp_owes_cpo"] = (-net, -vat, roaming.ref)
    out["cpo_retained"] = (net - fee - host_net, vat - fee_vat - host_vat, roaming.ref)
    return {k: (sign * a, sign * b, ref) for k, (a, b, ref) in out.items()}


def one_cdr_row(**kw: object) -> pd.DataFrame:
    """The split's input table with one CDR (NL, EUR, 10 kWh, 10.00 excl. / 12.10 incl. VAT, all energy),
    ``kw`` overriding its columns."""
    base = {
        "cdr_id": "X1",
        "cpo": CPOS[0],
        "emsp": EMSPS[0],
        "location_id": "LOC9",
        "country": "NL",
        "currency": "EUR",
        "end_date_time": pd.Timestamp("2026-10-05T12:00Z"),
        "energy_micro_kwh": 10_000_000,
        "total_excl": 1000,
        "total_incl": 1210,
        "energy_excl": 1000,
        "energy_incl": 1210,
    }
    base.update(kw)
    return pd.DataFrame([base])
