"""(stub: filled in by the issue-14 work on this part) ``/api/billing/...`` routes."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["billing"])
