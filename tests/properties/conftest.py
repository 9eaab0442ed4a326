"""Hypothesis profiles of the property tests (issue 12, item 6).

``properties-ci``: derandomized (the same examples on every run, so CI is reproducible and a failure is
replayed by re-running), no deadline (a loaded 2-core machine must not turn slowness into failures), no example
database (as the suite's ``evhub`` profile). ``properties-nightly``: the same with random examples. Each test
picks its example count with :func:`tests.properties.strategies.budget`; health checks stay on.
"""

from hypothesis import settings

settings.register_profile("properties-ci", deadline=None, derandomize=True, database=None)
settings.register_profile("properties-nightly", deadline=None, derandomize=False, database=None)
