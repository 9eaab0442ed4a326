"""Tests of the pricing engine, tariff storage and rating (a package, so each module is imported once)."""
