"""Billing tests: the pure core, no database. The property tests use the project's hypothesis profiles
(``properties-ci`` / ``properties-nightly``), registered by tests/properties/conftest.py, imported here."""

from __future__ import annotations

import tests.properties.conftest  # noqa: F401  (registers the hypothesis profiles that budget() loads)
