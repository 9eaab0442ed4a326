"""``evhub issuers add/list/show`` and ``evhub invoices list/show/issue`` on the real CLI and database (issue 14):
an invoice and its credit note issued from CDR rows, idempotently; bad input is one error line and exit 1."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from billing.store.issuers import get_issuer
from kernel.db.engine import Database
from tests.billing.store_kit import add_cdrs, add_credit
from tests.cli_kit import Cli, one_error

ISSUER = [
    "issuers", "add", "voltstreet", "--name", "Voltstreet Charging B.V.", "--street", "Keizersgracht 1",
    "--postal-code", "1015 CJ", "--city", "Amsterdam", "--country", "NL", "--vat-id", "NL123456789B01",
    "--registration-id", "KvK 44000001",
]  # fmt: skip
BUYER = ["--issuer", "voltstreet", "--buyer-name", "Ada Driver", "--buyer-country", "NL"]


async def test_issuers_add_list_show_and_refusals(cli: Cli) -> None:
    assert "added issuer voltstreet" in (await cli(*ISSUER)).output
    [item] = json.loads((await cli("issuers", "list", "--json")).output)
    assert (
        item["key"] == "voltstreet" and item["series"] == ["INV", "CN"] and item["vat_id"] == "NL123456789B01"
    )
    assert json.loads((await cli("issuers", "show", "voltstreet")).output)["currency"] == "EUR"
    one_error(await cli(*ISSUER, ok=False), "exists")
    # Its lines outside the scope of VAT need an invoice without VAT ids, naming it by its registration id.
    unregistered = [("other" if a == "voltstreet" else a) for a in ISSUER[:-2]]
    one_error(await cli(*unregistered, ok=False), "legal registration id")
    one_error(await cli("issuers", "show", "other", ok=False), "no issuer")
    one_error(await cli("issuers", "show", "nobody", ok=False), "no issuer")
    bad_country = list(ISSUER)
    bad_country[2] = "other"
    bad_country[bad_country.index("NL")] = "XX"
    one_error(await cli(*bad_country, ok=False), "ISO 3166-1")
    no_vat = ISSUER[:-2]  # without --vat-id
    no_vat[2] = "novat"
    one_error(await cli(*no_vat, ok=False), "VAT id")


# a 1x1 transparent PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


async def test_issuers_add_takes_a_logo_file_as_the_documents_data_uri(
    cli: Cli, db: Database, tmp_path: Path
) -> None:
    (tmp_path / "logo.png").write_bytes(PNG)
    await cli(*ISSUER, "--logo", str(tmp_path / "logo.png"))
    async with db.session() as s:
        row = await get_issuer(s, "voltstreet")
    assert row.logo == "data:image/png;base64," + base64.b64encode(PNG).decode()
    (tmp_path / "logo.gif").write_bytes(b"GIF89a")
    other = [*ISSUER[:2], "other", *ISSUER[3:]]
    one_error(await cli(*other, "--logo", str(tmp_path / "logo.gif"), ok=False), "a .png, .jpg or .svg file")
    one_error(await cli(*other, "--logo", str(tmp_path / "none.png"), ok=False), "none.png")
    (tmp_path / "big.png").write_bytes(PNG + bytes(300 * 1024))
    one_error(await cli(*other, "--logo", str(tmp_path / "big.png"), ok=False), "at most")


async def test_invoices_issue_list_show_and_credit(cli: Cli, db: Database) -> None:
    [cdr_id] = await add_cdrs(db, 1)
    await cli(*ISSUER)
    one_error(await cli("invoices", "issue", "--cdr", "CDR-0", ok=False), "needs --issuer")
    one_error(await cli("invoices", "issue", "--cdr", "NOPE", *BUYER, ok=False), "no CDR NOPE")
    out = (await cli("invoices", "issue", "--cdr", "cdr-0", *BUYER)).output
    assert "invoice INV-2026-000001: 9.41 EUR" in out
    assert "INV-2026-000001" in (await cli("invoices", "issue", "--cdr", "CDR-0", *BUYER)).output  # once
    credit_id = await add_credit(db, cdr_id)
    from kernel.models import Cdr

    async with db.session() as s:
        credit = await s.get(Cdr, credit_id)
        assert credit is not None
    assert "credit note CN-2026-000001" in (await cli("invoices", "issue", "--cdr", credit.cdr_uid)).output
    items = json.loads((await cli("invoices", "list", "--json")).output)
    assert [(i["number"], i["kind"]) for i in items] == [
        ("INV-2026-000001", "invoice"),
        ("CN-2026-000001", "credit_note"),
    ]
    shown = json.loads((await cli("invoices", "show", "INV-2026-000001")).output)
    assert shown["totals"]["tax_exclusive"] == "7.82" and len(shown["lines"]) == 3
    one_error(await cli("invoices", "show", "INV-2026-000009", ok=False), "no document")
    one_error(await cli("invoices", "list", "--issuer", "nobody", ok=False), "no issuer")
