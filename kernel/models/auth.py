"""Authentication state shared by every ``evhub serve`` process: remembered password checks and login throttles.

* ``password_checks``: one row per identity (``charger:<id>``) whose password was last verified with Argon2. It
  keeps a SHA-256 fingerprint of the stored hash and an HMAC-SHA256 of (identity, stored hash, password) under
  ``EVHUB_PASSWORD_CACHE_KEY``, never the password or an unkeyed hash of it; a changed password or hash (block,
  unblock, rotation) no longer matches, and a row past ``expires_at`` is ignored (see
  :mod:`kernel.password_checks`).
* ``login_throttles``: failure counters of the portal's login per client address, per (account, client) and per
  account, each with the instant until which that key is refused (see :mod:`portal.login`). Account keys are a
  keyed hash of the e-mail, so unknown e-mails are throttled without storing what was typed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base
from kernel.db.types import UTCDateTime


class PasswordCheck(Base):
    __tablename__ = "password_checks"

    identity: Mapped[str] = mapped_column(String(80), primary_key=True)
    hash_fingerprint: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class LoginThrottle(Base):
    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
