"""settlement — period settlement: splits every CDR's money among CPO, eMSP, hub and partners.

The money rules are pure, in :mod:`settlement.core`. The modules here are the adapters around them:
``run_inputs`` (what a run reads from the database), ``agreement_store`` (agreements in the database),
``export_files`` (a run's files on disk), ``dask_engine`` (the split on Dask), ``job`` (a run end to end)
and ``component`` (the monthly job and the HTTP API inside ``evhub serve``). No other stage imports it.
"""
