"""The fault suite (issue 15 item 6): ``make faults`` / ``python -m faults``.

A tool beside the product, like ``bench/``: it is no layer of the product (not in the import-linter contracts)
and imports the product's packages only to provision, start and count. Everything runs on loopback: a
throwaway PostgreSQL cluster (:mod:`faults.cluster`), ``evhub serve`` as a real process (:mod:`faults.hub`),
simulated chargers that remember what the hub acknowledged (:mod:`faults.chargers`), two OCPI partners and an
SMTP sink that can be made to fail (:mod:`faults.sinks`); :mod:`faults.run` runs the scenarios and
:mod:`faults.count` counts lost and duplicated data against what the chargers had acknowledged. docs/faults.md.
"""
