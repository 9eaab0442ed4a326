"""cpo_gateway — the OCPP-J 1.6 and 2.0.1 central system: chargers in, sessions and meter values out."""
