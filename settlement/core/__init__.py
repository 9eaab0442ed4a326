"""settlement.core — the functional core of settlement: pure functions and values, no I/O.

Nothing here reads or writes a database, a file, the network or the clock; every input (CDRs, agreements,
closing instants, "now") is passed in, so the same inputs always give the same bytes. The adapters around it
are the modules of :mod:`settlement` itself (database reads, exports on disk, Dask, the job, the component).

* ``agreements``: the split agreements (roaming, hub fee, site host), their versions and how they may change.
* ``accounting_periods``: settlement months, closing, and the period a late or credit CDR settles in.
* ``references``: an agreement's names checked against the parties and locations the hub knows.
* ``minor``: exact int64 minor-unit arithmetic and half-up rounding per currency.
* ``cdrs``: Decimal CDR rows -> the minor-unit CDR table the split reads.
* ``resolve``: vectorised lookup of the agreement version in force for each CDR.
* ``split``: CDRs + agreements -> one line per CDR per party (the odd cent stays with the CPO).
* ``explain``: one CDR's split, step by step, as plain data.
* ``statements``: a party's statement (ledger, totals per currency, kind and counterparty).
* ``netting``: net positions and transfers (bilateral, multilateral, via a clearing party).
* ``canonical_exports``: byte-identical CSV and Parquet of the lines, and the run's content hash.
* ``run``: one period's run: split, pick the period's lines, net, summarize (:class:`~.run.RunResult`).
"""
