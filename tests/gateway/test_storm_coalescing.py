"""Issue 15 item 1: a reconnect storm's database work is coalesced (kernel.coalesce) into few batched statements
— charger lookups, remembered password checks, marking online, BootNotification data — and stays honest: a
changed password is refused, an unknown charger is 404, and too many boots waiting are answered Pending."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import select, update

from cpo_gateway.charger_store import BOOT_PENDING_RETRY, ChargerStore
from cpo_gateway.events import Boot
from cpo_gateway.server import Gateway
from kernel.coalesce import Coalescer
from kernel.db.engine import Database
from kernel.models import ChargePoint
from kernel.password_checks import CheckCache
from kernel.security import hash_password
from tests.gateway.conftest import Seed, open_client
from tests.password_kit import CountingVerifier

KEY = "storm-test-cache-key"


async def test_callers_of_one_moment_share_one_batched_call_and_each_gets_its_own_result() -> None:
    calls: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        calls.append(items)
        await asyncio.sleep(0)
        return [2 * i for i in items]

    coalescer: Coalescer[int, int] = Coalescer(double, max_batch=40, concurrency=2)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(100)))
    assert results == [2 * i for i in range(100)]
    assert sorted(i for batch in calls for i in batch) == list(range(100))
    assert len(calls) <= 4  # 100 callers, at most 40 per batch: 3 batches (not 100 calls)
    assert coalescer.backlog == 0


async def test_a_failing_batch_fails_each_of_its_callers() -> None:
    async def broken(items: list[str]) -> list[str]:
        raise ConnectionRefusedError("database down")

    coalescer: Coalescer[str, str] = Coalescer(broken)
    outcomes = await asyncio.gather(*(coalescer.submit(s) for s in "abc"), return_exceptions=True)
    assert all(isinstance(o, ConnectionRefusedError) for o in outcomes)


async def test_batched_lookup_matches_the_single_one(db: Database, seeded: Seed) -> None:
    store = ChargerStore(db)
    batch = await store.load_chargers(["CP201", "NOPE", "CP16", "CP16"])
    assert batch[1] is None
    for identity, got in (("CP201", batch[0]), ("CP16", batch[2]), ("CP16", batch[3])):
        single = await store.load_charger(identity)
        assert got is not None and single is not None
        auth, ref = got
        assert ref == single[1]  # id, version, registration status, EVSE map
        assert (auth.security_profile, auth.password_hash) == (
            single[0].security_profile,
            single[0].password_hash,
        )
    assert batch[0] is not None and batch[0][1].evse_map == {1: seeded.evse_pks[2], 2: seeded.evse_pks[3]}


async def test_a_storm_of_upgrades_costs_few_lookups_and_stays_honest(gateway: Gateway, db: Database) -> None:
    """Twenty chargers (the same two identities over and over) connect at once: every one admitted, with a
    handful of batched lookups; then CP16's password changes and its old one is refused."""
    batches: list[int] = []
    lookup = gateway._lookup_batch

    async def counting(identities: list[str]) -> list:  # type: ignore[type-arg]
        batches.append(len(identities))
        return await lookup(identities)

    gateway.lookups._call = counting
    clients = await asyncio.gather(
        *(open_client(gateway, ("CP16", "CP201")[i % 2], ("ocpp1.6", "ocpp2.0.1")[i % 2]) for i in range(20))
    )
    for client in clients:
        with contextlib.suppress(Exception):  # most were replaced by a newer connection of their identity
            await client.close()
    assert sum(batches) == 20 and len(batches) < 20
    async with db.session() as s:
        await s.execute(
            update(ChargePoint)
            .where(ChargePoint.identity == "CP16")
            .values(password_hash=hash_password("new"))
        )
    with pytest.raises(Exception, match="401"):
        await open_client(gateway, "CP16", "ocpp1.6")


async def test_remembered_checks_load_in_batches_for_a_new_process_and_a_changed_hash_is_refused(
    db: Database,
) -> None:
    hashes = {f"C{i}": hash_password(f"pw-{i}") for i in range(12)}
    first = CheckCache(CountingVerifier(workers=2, queue=64), db, key=KEY)
    assert all(await asyncio.gather(*(first.check(i, h, f"pw-{i[1:]}") for i, h in hashes.items())))
    assert first.verifier.runs == 12  # type: ignore[attr-defined]
    fresh = CountingVerifier(workers=2, queue=64)  # another process (or a restart): same key, no memory
    second = CheckCache(fresh, db, key=KEY)
    assert all(await asyncio.gather(*(second.check(i, h, f"pw-{i[1:]}") for i, h in hashes.items())))
    assert fresh.runs == 0  # every check came from password_checks, no Argon2
    changed = hash_password("other")
    assert not await second.check("C0", changed, "pw-0")  # the old entry does not match a new hash
    assert not await second.check("C1", hashes["C1"], "wrong")
    first.verifier.close()
    fresh.close()


async def test_boots_are_stored_in_batches_and_past_capacity_answered_pending(
    db: Database, seeded: Seed
) -> None:
    store = ChargerStore(db)
    refs = [loaded[1] for loaded in await store.load_chargers(["CP16", "CP201", "CPPEND"]) if loaded]
    answers = await asyncio.gather(
        *(store.boot(ref, Boot(vendor=f"V{ref.id}", model="M", firmware_version="1.2")) for ref in refs)
    )
    assert answers == [("Accepted", None), ("Accepted", None), ("Pending", None)]
    async with db.session() as s:
        rows = (
            await s.execute(select(ChargePoint.id, ChargePoint.vendor, ChargePoint.firmware_version))
        ).all()
    assert {(r.vendor, r.firmware_version) for r in rows} == {(f"V{ref.id}", "1.2") for ref in refs}

    store.max_booting = 1  # one boot already waiting: the next is Pending with a retry interval
    waiting = asyncio.create_task(store.boot(refs[0], Boot(vendor="W", model="M")))
    await asyncio.sleep(0)
    assert store._boots.backlog == 1
    status, interval = await store.boot(refs[1], Boot(vendor="X", model="M"))
    assert status == "Pending" and interval is not None
    assert BOOT_PENDING_RETRY[0] <= interval <= BOOT_PENDING_RETRY[1]
    assert refs[1].registration_status == "Pending"  # until it boots again: only BootNotification is accepted
    assert await waiting == ("Accepted", None)
