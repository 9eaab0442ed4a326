"""evhub — the assembly: the one package that imports every stage and makes them a running hub.

The money path runs charger -> ``cpo_gateway`` -> session -> ``tariffs`` -> CDR -> ``ocpi`` (partners) and
``settlement`` -> ``portal`` (fleets, receipts), over the shared ``kernel``. This package puts them together:
the wiring of the seams (:mod:`evhub.wiring`), the process and its OCPP workers (:mod:`evhub.app`,
:mod:`evhub.workers`), the operator REST API, provisioning and lifecycle, the CLI and the demo.
"""

from kernel import __version__

__all__ = ["__version__"]
