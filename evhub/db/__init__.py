"""Storage: SQLAlchemy 2 async over PostgreSQL (asyncpg) and SQLite (aiosqlite) from the same models."""

from evhub.db.base import Base
from evhub.db.engine import Database

__all__ = ["Base", "Database"]
