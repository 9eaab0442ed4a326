"""evhub — the shared core of the EV-charging roaming and settlement hub.

The money path runs charger -> ``cpo_gateway`` -> session (this package's model) -> ``tariffs`` -> CDR ->
``ocpi`` (partners) and ``settlement`` -> ``portal`` (fleets, receipts). This package holds what they all share:
settings, storage, the domain model, money and time helpers, the CLI and process assembly.
"""

__version__ = "0.1.0"
