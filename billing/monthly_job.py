"""(stub) the monthly invoices job."""

from __future__ import annotations

from kernel.components import Hub


async def run_monthly_job(hub: Hub) -> int:
    """Issue every monthly invoice due (the previous month's, per fleet account); the number issued."""
    return 0
