"""(stub) the dunning job."""

from __future__ import annotations

from kernel.components import Hub


async def run_dunning_job(hub: Hub) -> int:
    """Do every dunning step due today; the number of steps done."""
    return 0
