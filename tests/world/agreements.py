"""The split agreements of the pricing network (:func:`tests.world.demo_network.seed_pricing_network`): NL*EMS
roaming at NL*AMP, the hub's EUR fee (5 % + 0.10 per session, Dutch VAT), and the site host's 10 % of
AMS-CENTRAAL; what the settlement and the billing (B2B) tests settle with."""

from __future__ import annotations

PRICING_NETWORK_AGREEMENTS = [
    {
        "kind": "roaming",
        "agreement_id": "roam-ems-amp",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "NL*EMS",
        "cpo": "NL*AMP",
    },
    {
        "kind": "hub_fee",
        "agreement_id": "hub-fee-eur",
        "version": 1,
        "valid_from": "2026-01-01",
        "hub": "NL*HUB",
        "currency": "EUR",
        "percentage": "0.05",
        "fixed_per_session": "0.10",
        "vat_rates": {"NLD": "0.21"},
    },
    {
        "kind": "site_host",
        "agreement_id": "site-ams",
        "version": 1,
        "valid_from": "2026-01-01",
        "site_host": "NL*SIT",
        "cpo": "NL*AMP",
        "location_id": "AMS-CENTRAAL",
        "share_percentage": "0.10",
    },
]
