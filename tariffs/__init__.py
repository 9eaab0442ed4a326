"""tariffs — the pricing engine: OCPI 2.2.1 tariffs, dynamic grid-load pricing, quotes and priced CDRs.

The public surface other stages may import (``make lint`` refuses any other import of this package from
``cpo_gateway``, ``ocpi``, ``settlement`` or ``portal``): reading a stored tariff document, the stored versions
that price a connector (:func:`versions_for_connector`), when a stored version applies from
(:func:`published_start`, for the Tariff object partners receive), and quoting them.
"""

from tariffs.core.engine import PricingError
from tariffs.core.quote import quote as quote_tariff
from tariffs.core.tariff_json import load_tariff
from tariffs.tariff_versions import published_start, versions_for_connector

__all__ = ["PricingError", "load_tariff", "published_start", "quote_tariff", "versions_for_connector"]
