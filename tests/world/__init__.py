"""The one seeding factory of the tests: small functions that build test worlds in the real database.

- :mod:`tests.world.demo_network`: the demo's parties, locations and tariffs (``evhub/demo_data``), tokens and an
  OCPI partner, composed into the networks the pricing, settlement, wiring and CLI tests run on;
- :mod:`tests.world.sites`: a CPO, a location with EVSEs and a charger made from scratch (no demo data);
- :mod:`tests.world.sessions`: charging sessions, ended with a meter value a minute (waiting to be priced) or open;
- :mod:`tests.world.cdrs`: a hand-made CDR as a CPO's back office would send it;
- :mod:`tests.world.fleets`: the portal's world (a Berlin site, fleets with managers, drivers' tokens, priced
  sessions);
- :mod:`tests.world.api_network`: the back-office API's world (two CPOs, priced CDRs, API keys).

Each function opens its own database transaction and returns what the test needs to refer to (ids, uids) as a
typed value. Nothing here is a test, and no test module is imported from here.
"""
