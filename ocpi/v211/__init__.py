"""OCPI 2.1.1 at the edge: the hub's objects are OCPI 2.2.1 (``ocpi.render_objects``); a partner that
negotiated 2.1.1 gets them translated by :mod:`ocpi.v211.objects` (pure functions, both directions), served by
the 2.1.1 routes and sent by the outbox in 2.1.1 form. See docs/ocpi.md, "OCPI 2.1.1"."""

VERSION_211 = "2.1.1"
