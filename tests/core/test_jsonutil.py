"""Exact JSON: Decimals round-trip through text and through the database's JSON columns."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from kernel import jsonutil
from kernel.db.engine import Database
from kernel.models import OutboxMessage
from tariffs.core import tariff_json as tariffs_json
from tariffs.core.tariff_document import Price


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


def test_one_codec_for_models_dates_and_strings() -> None:
    """tariffs.core.tariff_json's dumps/to_jsonable are this codec: models, aware datetimes, Decimals as strings."""
    assert tariffs_json.dumps is jsonutil.dumps and tariffs_json.to_jsonable is jsonutil.to_jsonable
    doc = {
        "price": Price(excl_vat=Decimal("1.50"), incl_vat=Decimal("1.815")),
        "at": datetime(2026, 10, 1, tzinfo=UTC),
    }
    assert (
        jsonutil.dumps(doc)
        == '{"price": {"excl_vat": 1.50, "incl_vat": 1.815}, "at": "2026-10-01T00:00:00Z"}'
    )
    assert jsonutil.dumps(doc, decimals_as="string") == (
        '{"price": {"excl_vat": "1.50", "incl_vat": "1.815"}, "at": "2026-10-01T00:00:00Z"}'
    )
    assert jsonutil.to_jsonable({"a": Decimal("2")}, decimals_as="keep") == {"a": Decimal("2")}
    with pytest.raises(ValueError, match="non-finite"):
        jsonutil.dumps({"a": Decimal("NaN")})


def test_the_wire_codec_writes_decimals_with_their_exact_digits() -> None:
    frame = [3, "u1", {"limit": Decimal("16.50"), "wh": Decimal("12345678901234567890.123456789"), "n": 2}]
    text = jsonutil.dumps_compact(frame)
    assert text == '[3,"u1",{"limit":16.50,"wh":12345678901234567890.123456789,"n":2}]'
    assert jsonutil.loads(text) == frame
    assert jsonutil.loads(text.encode()) == frame
    assert jsonutil.dumps_compact({"idTag": "ÄBC", "x": 0.1}) == '{"idTag":"ÄBC","x":0.1}'


def test_the_wire_codec_refuses_what_is_not_json() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        jsonutil.dumps_compact({"v": Decimal("NaN")})
    with pytest.raises(TypeError, match="datetime"):
        jsonutil.dumps_compact({"t": datetime(2026, 1, 1, tzinfo=UTC)})
