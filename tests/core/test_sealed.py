"""The partners' outgoing tokens are sealed at rest (kernel/sealed.py, issue 13): the row holds no plain token
(read with raw SQL on SQLite and PostgreSQL), rotation, a wrong key, rows stored before sealing, the
development key's warning."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from kernel import sealed
from kernel.db.engine import Database
from kernel.models.roaming import OcpiPartner, reseal_outgoing_tokens
from kernel.sealed import DEVELOPMENT_WARNING, Keyring, UnsealError

TOKEN = "the-token-the-hub-presents-4f1e9a"
NEW = "a-new-sealing-key-of-2026-12"
OLD = "the-old-sealing-key-of-2026"


@pytest.fixture(autouse=True)
def keyring_restored() -> Iterator[None]:
    """Each test may configure the process's keyring; the next one gets it back as it was."""
    before = sealed.keyring()
    yield
    sealed.configure(",".join(before.keys))


async def _partner(db: Database, token: str | None = TOKEN) -> int:
    async with db.session() as s:
        partner = OcpiPartner(name="Sim eMSP", outgoing_token=token)
        s.add(partner)
        await s.flush()
        return partner.id


async def _stored(db: Database, partner_id: int) -> str | None:
    """The column as the database holds it (no ORM, no unsealing)."""
    async with db.engine.connect() as conn:
        query = text("SELECT outgoing_token FROM ocpi_partners WHERE id = :id")
        return (await conn.execute(query, {"id": partner_id})).scalar_one()


async def _token(db: Database, partner_id: int) -> str | None:
    async with db.session() as s:
        partner = await s.get(OcpiPartner, partner_id)
        assert partner is not None
        return partner.outgoing_token


def test_sealing_round_trip_hides_the_value() -> None:
    ring = Keyring.from_setting(NEW)
    first, second = ring.seal(TOKEN), ring.seal(TOKEN)
    assert first.startswith("v1:") and TOKEN not in first
    assert first != second  # a fresh IV each time: equal tokens do not look equal at rest
    assert ring.unseal(first, "x") == ring.unseal(second, "x") == TOKEN
    assert not ring.needs_reseal(first)


def test_rotation_new_key_first_old_key_second() -> None:
    old_ring, rotated, new_only = (Keyring.from_setting(v) for v in (OLD, f"{NEW}, {OLD}", NEW))
    stored = old_ring.seal(TOKEN)
    assert rotated.unseal(stored, "x") == TOKEN  # the old key still unseals...
    assert rotated.needs_reseal(stored)  # ...but the value is to be sealed with the new one
    resealed = rotated.seal(rotated.unseal(stored, "x"))
    assert not rotated.needs_reseal(resealed)
    assert new_only.unseal(resealed, "x") == TOKEN  # the old key may go now
    with pytest.raises(UnsealError):
        old_ring.unseal(resealed, "x")


def test_wrong_key_is_one_clear_error_without_the_value() -> None:
    stored = Keyring.from_setting(OLD).seal(TOKEN)
    with pytest.raises(UnsealError) as err:
        Keyring.from_setting(NEW).unseal(stored, "outgoing token of OCPI partner 7 ('Sim eMSP')")
    message = str(err.value)
    assert "OCPI partner 7 ('Sim eMSP')" in message and "EVHUB_SECRETS_KEY" in message
    assert TOKEN not in message and stored not in message and NEW not in message


def test_a_damaged_value_is_the_same_clear_error() -> None:
    ring = Keyring.from_setting(NEW)
    with pytest.raises(UnsealError, match="EVHUB_SECRETS_KEY"):
        ring.unseal(ring.seal(TOKEN)[:-4] + "AAAA", "x")


def test_a_value_stored_before_sealing_is_read_as_plain_text() -> None:
    ring = Keyring.from_setting(NEW)
    assert ring.unseal(TOKEN, "x") == TOKEN and ring.needs_reseal(TOKEN)


def test_unset_means_the_development_key() -> None:
    assert Keyring.from_setting("").development and Keyring.from_setting(" , ").development
    assert not Keyring.from_setting(NEW).development
    with pytest.raises(ValueError, match="key 2 is shorter than 16 characters"):
        Keyring.from_setting(f"{NEW},short")


def test_the_development_key_is_warned_about_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sealed, "_warned", False)
    sealed.configure(NEW)
    with caplog.at_level(logging.WARNING, logger="kernel.sealed"):
        assert not sealed.warn_if_development()
        sealed.configure("")
        assert sealed.warn_if_development() and sealed.warn_if_development()
    assert [r.getMessage() for r in caplog.records] == [DEVELOPMENT_WARNING]
    assert "EVHUB_SECRETS_KEY" in DEVELOPMENT_WARNING


async def test_the_row_holds_no_plain_token(db: Database) -> None:
    sealed.configure(NEW)
    partner_id = await _partner(db)
    stored = await _stored(db, partner_id)
    assert stored is not None and stored.startswith("v1:") and TOKEN not in stored
    assert await _token(db, partner_id) == TOKEN  # every call site reads it as before
    async with db.session() as s:  # ...and writes it as before
        partner = await s.get(OcpiPartner, partner_id)
        assert partner is not None
        partner.outgoing_token = "a-rotated-token-c"
    stored_again = await _stored(db, partner_id)
    assert stored_again is not None and "a-rotated-token-c" not in stored_again
    assert await _token(db, partner_id) == "a-rotated-token-c"
    async with db.session() as s:
        partner = await s.get(OcpiPartner, partner_id)
        assert partner is not None
        partner.outgoing_token = None  # unregistered: forgotten
    assert await _stored(db, partner_id) is None and await _token(db, partner_id) is None


async def test_legacy_plaintext_row_is_sealed_once(db: Database) -> None:
    sealed.configure(NEW)
    partner_id, empty_id = await _partner(db), await _partner(db, None)
    async with db.engine.begin() as conn:  # as stored before sealing
        await conn.execute(
            text("UPDATE ocpi_partners SET outgoing_token = :t WHERE id = :id"),
            {"t": TOKEN, "id": partner_id},
        )
    assert await _token(db, partner_id) == TOKEN
    async with db.session() as s:
        assert await reseal_outgoing_tokens(s) == 1
    stored = await _stored(db, partner_id)
    assert stored is not None and stored.startswith("v1:") and TOKEN not in stored
    assert await _token(db, partner_id) == TOKEN and await _stored(db, empty_id) is None
    async with db.session() as s:
        assert await reseal_outgoing_tokens(s) == 0  # idempotent: a second start rewrites nothing


async def test_rotation_rewrites_old_rows_with_the_new_key(db: Database) -> None:
    sealed.configure(OLD)
    partner_id = await _partner(db)
    sealed.configure(f"{NEW},{OLD}")
    assert await _token(db, partner_id) == TOKEN  # readable with the old key second
    async with db.session() as s:
        assert await reseal_outgoing_tokens(s) == 1
    sealed.configure(NEW)  # the old key is dropped
    assert await _token(db, partner_id) == TOKEN


async def test_wrong_key_names_the_partner_and_the_setting(db: Database) -> None:
    sealed.configure(OLD)
    partner_id = await _partner(db)
    sealed.configure(NEW)
    async with db.session() as s:
        partner = await s.get(OcpiPartner, partner_id)  # loading the partner still works...
        assert partner is not None and partner.name == "Sim eMSP"
        with pytest.raises(UnsealError) as err:
            partner.outgoing_token  # noqa: B018 - ...using its token does not
    message = str(err.value)
    assert f"OCPI partner {partner_id} ('Sim eMSP')" in message and "EVHUB_SECRETS_KEY" in message
    assert TOKEN not in message
    with pytest.raises(UnsealError, match=f"OCPI partner {partner_id} "):
        async with db.session() as s:
            await reseal_outgoing_tokens(s)
