"""Exact JSON: Decimals round-trip through text and through the database's JSON columns."""

from decimal import Decimal

from sqlalchemy import select, text

from evhub import jsonutil
from evhub.db.engine import Database
from evhub.models import OutboxMessage


def test_decimals_are_written_as_exact_numbers() -> None:
    doc = {"total": Decimal("3.90"), "tiny": Decimal("0.000001"), "list": [Decimal("-1.5"), 2, "x \u2063 y"]}
    assert jsonutil.dumps(doc) == '{"total": 3.90, "tiny": 0.000001, "list": [-1.5, 2, "x \u2063 y"]}'
    assert jsonutil.loads(jsonutil.dumps(doc)) == doc


async def test_json_columns_keep_decimals(db: Database) -> None:
    async with db.session() as s:
        s.add(OutboxMessage(channel="t", destination="d", ordering_key="k", payload={"a": Decimal("0.10")}))
    async with db.session() as s:
        payload = await s.scalar(select(OutboxMessage.payload))
        raw = await s.scalar(text("SELECT payload FROM outbox"))
    assert payload == {"a": Decimal("0.10")} and isinstance(payload["a"], Decimal)
    assert "0.10" in str(raw)
