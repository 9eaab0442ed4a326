"""Properties a (DB level) and b (issue 12, item 6): charger scripts through the real gateway and rating.

The scripts of :mod:`tests.properties.charger_scripts` are sent over a real websocket to a running gateway
(1.6 on CP16, 2.0.1 on CP201) with the hub's clock pinned just after each session, then rated with the clock
past every grace. a: the CDR's energy is the metered energy (from the script alone). b: with the frames
delivered out of order (1.6: everything after the StartTransaction; 2.0.1: any order, Ended first included)
and some twice, each transaction is one session with exactly one current CDR (originals minus credits == 1),
whose content equals the CDR of the same script delivered in order.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, event, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from cpo_gateway.server import Gateway
from kernel.clock import pinned
from kernel.db.engine import Database
from kernel.jsonutil import dumps
from kernel.models import Cdr, ChargingSession, PricingState
from tariffs.rating import rate_pending
from tests.gateway.conftest import Client, open_client

from .charger_scripts import Script, scripts, v16_after_start, v16_start, v201_events
from .strategies import budget

D = Decimal
_ids = itertools.count(1)
SHARED_GATEWAY = [HealthCheck.function_scoped_fixture]
"""The gateway (and its database) is deliberately one per test, not per example: starting one per example would
not fit the time budget, and every example uses transaction ids of its own and looks only at its sessions."""


async def _send(c: Client, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    uid = f"p{next(_ids)}"
    answer = await c.raw(dumps([2, uid, action, payload]), uid)  # exact decimals on the wire
    assert answer[0] == 3, answer
    return answer[2]


async def deliver(
    gw: Gateway,
    script: Script,
    connector: int,
    order: list[int] | None = None,
    twice: frozenset[int] = frozenset(),
    start_again: bool = False,
) -> str:
    """Send ``script`` on ``connector`` (1.6) / EVSE ``connector`` (2.0.1) in ``order`` (indexes of the messages
    after the 1.6 start, of all 2.0.1 events; default: in order), the messages in ``twice`` resent right away
    (and the 1.6 StartTransaction when ``start_again``);
    returns the transaction id. The hub's clock stands just after the session meanwhile."""
    with pinned(script.end + timedelta(minutes=1)):
        if script.version == "1.6":
            c = await open_client(gw, "CP16", "ocpp1.6")
            tx = (await _send(c, "StartTransaction", v16_start(script, connector)))["transactionId"]
            if start_again:  # resent (its answer lost): the same transaction (M7)
                again = (await _send(c, "StartTransaction", v16_start(script, connector)))["transactionId"]
                assert again == tx
            messages = v16_after_start(script, tx, connector)
            tx_id = str(tx)
        else:
            c = await open_client(gw, "CP201", "ocpp2.0.1")
            tx_id = f"PROP-{next(_ids)}"
            messages = [("TransactionEvent", e) for e in v201_events(script, tx_id, connector)]
        for i in order if order is not None else range(len(messages)):
            action, payload = messages[i]
            await _send(c, action, payload)
            if i in twice:
                await _send(c, action, payload)
        await c.close()
    return tx_id


async def rate_until_quiet(db: Database, script: Script) -> None:
    """Rate with the clock past every grace until no session waits for pricing."""
    for hours in range(1, 6):
        with pinned(script.end + timedelta(hours=hours)):
            await rate_pending(db, ())
        async with db.session() as s:
            waiting = await s.scalar(
                select(func.count())
                .select_from(ChargingSession)
                .where(ChargingSession.pricing_state.in_((PricingState.PENDING, PricingState.REPRICE)))
            )
        if not waiting:
            return


async def session_cdrs(db: Database, tx_id: str) -> tuple[list[ChargingSession], list[Cdr]]:
    async with db.session() as s:
        sessions = list(
            (await s.scalars(select(ChargingSession).where(ChargingSession.transaction_id == tx_id))).all()
        )
        ids = [x.id for x in sessions]
        cdrs = list((await s.scalars(select(Cdr).where(Cdr.session_id.in_(ids)).order_by(Cdr.id))).all())
    return sessions, cdrs


_shift = itertools.count(1)


def own_start(script: Script) -> Script:
    """``script`` moved on by a few seconds of its own: examples share the gateway, and a 1.6 StartTransaction
    with another example's connector, timestamp and idTag would rightly be taken for that one resent (M7)."""
    return replace(script, start=script.start + timedelta(seconds=next(_shift)))


def current(cdrs: list[Cdr]) -> Cdr:
    originals = [c for c in cdrs if not c.is_credit]
    return max(originals, key=lambda c: c.revision)


@budget(12, suppress_health_check=SHARED_GATEWAY)
@given(scripts())
async def test_cdr_energy_is_the_metered_energy_through_the_gateway(
    props_gateway: Gateway, db: Database, script: Script
) -> None:
    """Issue 12 item 6a (M1, M2, M3, M5), DB level: a charger script sent in order over a real websocket and
    rated gives one CDR whose total_energy == round(metered Wh / 1000, 6) (from the script alone) and whose
    charging periods' ENERGY volumes add up to it."""
    script = own_start(script)
    tx_id = await deliver(props_gateway, script, 1)
    await rate_until_quiet(db, script)
    sessions, cdrs = await session_cdrs(db, tx_id)
    assert len(sessions) == 1, [s.session_uid for s in sessions]
    state = sessions[0].pricing_state
    assert state == PricingState.PRICED, (state, sessions[0].pricing_error, sessions[0].review_reason)
    cdr = current(cdrs)
    expected = (script.metered_wh() / 1000).quantize(D("0.0001"), ROUND_HALF_UP)
    assert D(str(cdr.total_energy_kwh)) == expected
    energy = [
        D(str(d["volume"]))
        for p in cdr.data["charging_periods"]
        for d in p["dimensions"]
        if d["type"] == "ENERGY"
    ]
    assert sum(energy, D(0)) == expected


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[Script, list[int], frozenset[int], bool]:
    script = draw(scripts())
    # 1.6: the Begin reading and the samples as MeterValues, then the Stop; 2.0.1: Started, Updated.., Ended
    count = len(script.increments) + 1
    order = list(draw(st.permutations(list(range(count)))))
    if draw(st.booleans()):  # the Stop / Ended first (delivered after an outage, the oldest last)
        order.remove(count - 1)
        order.insert(0, count - 1)
    twice = frozenset(draw(st.sets(st.sampled_from(range(count)), max_size=2)))
    return script, order, twice, draw(st.booleans())


@budget(16, suppress_health_check=SHARED_GATEWAY)
@given(deliveries())
async def test_every_finished_session_has_exactly_one_current_cdr(
    props_gateway: Gateway, db: Database, case: tuple[Script, list[int], frozenset[int], bool]
) -> None:
    """Issue 12 item 6b (M4, M6, M7): frames delivered out of order and twice (a 1.6 StartTransaction resent
    too) give one session per transaction
    with exactly one current CDR (originals - credits == 1) once rating is quiet, and that CDR has the energy,
    times and total of the same script delivered in order."""
    script, order, twice, start_again = case
    script = own_start(script)
    last_first = order[0] == len(order) - 1
    event(
        f"{script.version} {'stop/ended first' if last_first else 'in order' if order == sorted(order) else 'shuffled'}"
    )
    tx_id = await deliver(props_gateway, script, 1, order, twice, start_again)
    await rate_until_quiet(db, script)
    ref_tx = await deliver(props_gateway, script, 2)
    await rate_until_quiet(db, script)
    sessions, cdrs = await session_cdrs(db, tx_id)
    assert len(sessions) == 1, [s.session_uid for s in sessions]
    originals = sum(1 for c in cdrs if not c.is_credit)
    credits = sum(1 for c in cdrs if c.is_credit)
    assert originals - credits == 1, (
        sessions[0].pricing_state,
        sessions[0].pricing_error,
        originals,
        credits,
    )
    _ref_sessions, ref_cdrs = await session_cdrs(db, ref_tx)
    got, want = current(cdrs), current(ref_cdrs)
    fields = ("start_date_time", "end_date_time", "total_energy_kwh", "total_time_hours")
    assert [getattr(got, f) for f in fields] == [getattr(want, f) for f in fields]
    assert (got.total_cost_excl_vat, got.total_cost_incl_vat) == (
        want.total_cost_excl_vat,
        want.total_cost_incl_vat,
    )


@budget(6, suppress_health_check=SHARED_GATEWAY)
@given(scripts(phases_only=True, version="2.0.1"))
async def test_phase_registers_only_through_the_gateway(
    props_gateway: Gateway, db: Database, script: Script
) -> None:
    """Issue 12 item 6a (M3, D1 phase rule), DB level: a 2.0.1 charger that reports its energy register per
    phase only (L1, L2, L3, no phase-less value; OCPP: the overall value is then their sum) gives a CDR with
    the metered energy. Found by this property (the gateway read only phase-less registers: 0 kWh), fixed in
    db5837b."""
    script = own_start(script)
    tx_id = await deliver(props_gateway, script, 1)
    await rate_until_quiet(db, script)
    sessions, cdrs = await session_cdrs(db, tx_id)
    assert len(sessions) == 1
    assert sessions[0].pricing_state == PricingState.PRICED, (
        sessions[0].pricing_error,
        sessions[0].review_reason,
    )
    expected = (script.metered_wh() / 1000).quantize(D("0.0001"), ROUND_HALF_UP)
    assert D(str(current(cdrs).total_energy_kwh)) == expected
