"""(stub) :class:`kernel.seams.BillingDesk` for the portal and the receipts."""

from __future__ import annotations

from kernel.db.engine import Database


class Desk:
    """Billing as the portal sees it (stub until the portal part lands)."""

    def __init__(self, db: Database) -> None:
        self.db = db
