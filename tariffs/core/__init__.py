"""tariffs.core — the functional core of pricing: pure functions, no I/O (no database, clock, network, files).

Everything here is computed from its arguments only; "now" and stored data come in as parameters, from the
adapters one level up (``tariffs.rating``, ``tariffs.dynamic``, ``tariffs.tariff_versions``, ``tariffs.api``).

* ``tariff_document``: the OCPI 2.2.1 tariff as a typed document (pydantic), and the CDR-side types it prices.
* ``tariff_json``: reading tariff documents and charging periods from JSON with exact Decimal numbers.
* ``compiled_tariff``: a tariff compiled once into plain slotted objects for the hot path.
* ``restrictions``: whether an element's TariffRestrictions hold at one moment, on the local wall clock.
* ``charging_periods``: a session as ``Period`` s, cut at every instant the price may change.
* ``meter_periods``: periods from a meter series (parking where energy stops, power/current thresholds).
* ``ocpi_periods``: OCPI ChargingPeriods <-> Periods.
* ``pricing_result``: what pricing returns (cost lines, per-period charges, step rounding, totals).
* ``engine``: ``price_session``, the OCPI tariff rules applied to a session's periods, as named steps.
* ``quote``: a planned session priced by the same engine path.
* ``render``: a pricing result as OCPI CDR cost fields and a machine-readable explanation.
* ``grid_rules``: grid-load rules that derive tariff versions from a base tariff, and their state machine.
"""
