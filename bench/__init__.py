"""Benchmarks: each ``bench/bench_*.py`` has a ``main()``; ``make bench`` (``python -m bench``) runs them all."""
