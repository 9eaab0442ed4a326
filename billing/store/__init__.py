"""billing.store — billing's database adapter (issue 14): issuers, the gap-free allocator, issued documents.

* ``issuers``: :class:`billing.core.Issuer` as a ``billing_issuers`` row and back.
* ``numbers``: the counter row per issuer, series and period, locked and incremented in the issuing
  transaction, so numbers are gap-free and never issued twice.
* ``cdrs``: a ``cdrs`` row as a :class:`billing.core.PricedCdr` (its explanation lines as components).
* ``codec``: documents as JSON (the ``document`` column, as issued) and back.
* ``issuing``: the per-session invoice of a CDR and the credit note of a credit CDR, idempotent.

The tables are :mod:`kernel.models.billing`; issued documents and their CDR links are immutable (the ORM
refuses an update or a delete, :mod:`kernel.models.immutability`).
"""
