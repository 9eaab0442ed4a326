"""billing.core — the functional core of billing: pure functions and frozen values, no I/O.

Nothing here reads or writes a database, a file, the network or the clock; dates, instants and the documents
issued so far are passed in, so the same inputs always give the same documents. Money is Decimal with its
currency and is rounded only by :mod:`kernel.money`.

* ``en16931``: the EN 16931 arithmetic (BR-CO-17 category VAT, the document totals BT-106..BT-115).
* ``documents``: identities, invoice lines, VAT breakdown, totals, invoices and credit notes, validated.
* ``vat``: VAT category per line (standard, zero, exempt, reverse charge, outside scope), the breakdown, the
  wording, and how invoice VAT relates to the CDRs' incl.-VAT totals.
* ``lines``: priced CDRs -> invoice lines, to the cent; fee lines; grouping per driver and vehicle.
* ``issuers``: who issues documents: identity, currency, series, terms, VAT situation.
* ``invoices``: the per-session invoice and the monthly invoice, assembled.
* ``credit_notes``: credit notes from a credit CDR, full and partial, never more than is left to credit.
* ``numbering``: number series and the gap-free rule.
* ``dunning``: a per-issuer schedule evaluated into the next steps, idempotently.
* ``aging``: accounts receivable aging buckets, and payments allocated to invoices.
"""
