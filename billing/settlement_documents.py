"""(stub) B2B documents from closed settlement runs."""

from __future__ import annotations

from kernel.components import Hub


async def run_settlement_documents_job(hub: Hub) -> int:
    """Issue the documents of every closed settlement run that has none yet; the number issued."""
    return 0
