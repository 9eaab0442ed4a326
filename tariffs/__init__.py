"""tariffs — the pricing engine: OCPI 2.2.1 tariffs, dynamic grid-load pricing, quotes and priced CDRs."""
