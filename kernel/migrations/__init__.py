"""Alembic migrations of the hub's schema (script location: this folder)."""
