"""Operator functions behind ``evhub fleets add`` and ``evhub fleets add-manager``."""

from __future__ import annotations

from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import Fleet, FleetManager
from kernel.money import normalize_currency
from kernel.security import hash_password


class AdminError(ValueError):
    """A fleet or manager that cannot be created (duplicate, unknown fleet, bad input)."""


async def add_fleet(db: Database, name: str, currency: str = "EUR") -> Fleet:
    """Create a fleet; refuses a duplicate name."""
    name = name.strip()
    if not name:
        raise AdminError("fleet name must not be empty")
    code = normalize_currency(currency)
    async with db.session() as db_session:
        if (await db_session.execute(select(Fleet.id).where(Fleet.name == name))).first() is not None:
            raise AdminError(f"fleet {name!r} already exists")
        fleet = Fleet(name=name, currency=code)
        db_session.add(fleet)
        await db_session.flush()
    return fleet


async def add_manager(
    db: Database, fleet_name: str, email: str, password: str, *, name: str | None = None
) -> FleetManager:
    """Create a fleet manager login (Argon2id-hashed password); refuses a duplicate email."""
    email = email.strip().lower()
    if "@" not in email:
        raise AdminError(f"not an email address: {email!r}")
    if len(password) < 8:
        raise AdminError("password must have at least 8 characters")
    async with db.session() as db_session:
        fleet = (await db_session.execute(select(Fleet).where(Fleet.name == fleet_name))).scalar_one_or_none()
        if fleet is None:
            raise AdminError(f"no fleet named {fleet_name!r}")
        if (await db_session.execute(select(FleetManager.id).where(FleetManager.email == email))).first():
            raise AdminError(f"a manager with email {email!r} already exists")
        manager = FleetManager(
            fleet_id=fleet.id, email=email, name=name, password_hash=hash_password(password)
        )
        db_session.add(manager)
        await db_session.flush()
    return manager
