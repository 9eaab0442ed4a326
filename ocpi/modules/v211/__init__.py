"""The hub's OCPI 2.1.1 routes (``/ocpi/cpo/2.1.1/<module>``), one module per OCPI module, for partners that
negotiated 2.1.1. Each serves the same rows as its 2.2.1 module (the same visibility functions, factored out
of :mod:`ocpi.modules`), translated at the edge by :mod:`ocpi.v211.objects`; received tokens and commands are
translated to 2.2.1 and go down the same storing / CommandRunner path as 2.2.1 ones."""
