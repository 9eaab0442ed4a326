"""The portal's pages (server-rendered, mounted at ``/portal``), one module per page group. Every page and export
is scoped to the logged-in manager's fleet; every POST checks the CSRF token; a token or session of another
fleet is a 404."""

from __future__ import annotations

from fastapi import APIRouter

from portal import (
    billing_pages,
    dashboard_page,
    driver_pages,
    login_pages,
    price_page,
    report_pages,
    session_pages,
    token_pages,
)
from portal.page_kit import PageKit, PortalState

PAGE_GROUPS = (
    login_pages,
    dashboard_page,
    token_pages,
    driver_pages,
    session_pages,
    report_pages,
    price_page,
    billing_pages,
)


def build_router(state: PortalState) -> APIRouter:
    """Every page of the portal on ``state`` (to be included under :data:`portal.page_kit.PREFIX`)."""
    kit = PageKit(state)
    router = APIRouter()
    for group in PAGE_GROUPS:
        router.include_router(group.routes(kit))
    return router
