"""The portal's PDF download is by the manager's own account and the document's id (issue 14): two issuers both
number their first invoice INV-2026-000001, and a fleet billed by both gets each one's own PDF; a fleet never
fetches another fleet's document (through its own account or through the other's), nor one of its documents
through its other issuer's account."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from sqlalchemy import select

import billing
from billing.einvoice import embedded_xml
from billing.store.accounts import buyer_of, fleet_account
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingIssuer
from tests.billing import reports_kit as rk
from tests.portal.helpers import login, portal_client
from tests.world.fleets import add_fleet_with_manager, add_session, add_token, base_world

OTHER = replace(
    rk.ISSUER,
    key="other",
    identity=replace(rk.SELLER, legal_name="Andere Lade AG", vat_id="DE987654321"),
)


async def _issue(db: Database, issuer_key: str, cdr_id: int, account_id: int) -> BillingDocument:
    async with db.session() as s:
        account = await s.get(BillingAccount, account_id)
        assert account is not None
        return await billing.issue_session_invoice(
            s, issuer_key=issuer_key, cdr_id=cdr_id, buyer=buyer_of(account), issue_date=date(2026, 6, 5),
            account_id=account_id,
        )  # fmt: skip


async def test_a_fleet_gets_only_its_own_documents_by_account_and_id(db: Database) -> None:
    world = await base_world(db)
    acme = await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    globex = await add_fleet_with_manager(db, world, "Globex", "boss@globex.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice")
    await add_token(db, world, "Globex", "GLOBEX1", driver="Gina")
    await rk.add_issuer(db)
    async with db.session() as s:
        await billing.add_issuer(s, OTHER)
    acme_main = await rk.add_account(db, acme, "Acme")
    globex_main = await rk.add_account(db, globex, "Globex")
    async with db.session() as s:
        other_row = (await s.scalars(select(BillingIssuer).where(BillingIssuer.key == "other"))).one()
        acme_other = (await fleet_account(s, other_row, acme, rk.fleet_buyer("Acme"))).id
    cdrs = []
    for token, day in (("ACME01", 2), ("ACME01", 3), ("GLOBEX1", 4)):
        _, cdr = await add_session(db, world, token, datetime(2026, 6, day, 8, tzinfo=UTC), "10")
        assert cdr is not None
        cdrs.append(cdr)
    by_main = await _issue(db, rk.ISSUER_KEY, cdrs[0], acme_main)
    by_other = await _issue(db, "other", cdrs[1], acme_other)
    globex_doc = await _issue(db, "other", cdrs[2], globex_main)
    assert by_main.number == by_other.number == "INV-2026-000001"  # two issuers, one number
    app = rk.billing_portal_app(db)
    async with portal_client(app) as client:
        await login(client, "boss@acme.test")
        page = (await client.get("/portal/billing")).text
        for account, doc, seller in (
            (acme_main, by_main, "EVH Mobility GmbH"),
            (acme_other, by_other, "Andere"),
        ):
            href = f"/portal/billing/accounts/{account}/documents/{doc.id}"
            assert f'href="{href}"' in page
            pdf = await client.get(href)
            assert pdf.status_code == 200, pdf.text
            assert seller.encode() in embedded_xml(pdf.content)  # the issuer's own document, not the other's
        refused = [
            (acme_main, by_other.id),  # its own document through its other account
            (acme_other, by_main.id),
            (acme_main, globex_doc.id),  # another fleet's, through its own account
            (globex_main, globex_doc.id),  # another fleet's, through that fleet's account
            (globex_main, by_main.id),
        ]
        for account, doc_id in refused:
            answer = await client.get(f"/portal/billing/accounts/{account}/documents/{doc_id}")
            assert answer.status_code == 404 and b"%PDF" not in answer.content
    async with portal_client(app) as globex_client:
        await login(globex_client, "boss@globex.test")
        mine = await globex_client.get(f"/portal/billing/accounts/{globex_main}/documents/{globex_doc.id}")
        assert mine.status_code == 200 and b"Andere" in embedded_xml(mine.content)
        for account, doc_id in (
            (globex_main, by_main.id),
            (acme_main, by_main.id),
            (acme_other, by_other.id),
        ):
            answer = await globex_client.get(f"/portal/billing/accounts/{account}/documents/{doc_id}")
            assert answer.status_code == 404
