"""Storage: SQLAlchemy 2 async over PostgreSQL (asyncpg) and SQLite (aiosqlite) from the same models."""

from kernel.db.base import Base
from kernel.db.engine import Database

__all__ = ["Base", "Database"]
