"""Charger scripts for the metering properties (issue 12, item 6): one session as OCPP 1.6 or 2.0.1 frames,
built with the simulator's own builders (:mod:`simulators.chargepoints.frames`), and its metered energy
computed from the script alone (not from :mod:`kernel.meter_reading`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from simulators.chargepoints import frames

from .strategies import start_instants

D = Decimal


@dataclass(frozen=True)
class Script:
    version: str
    start: datetime
    register_wh: int  # the register at the start
    interval_s: int
    increments: tuple[int, ...]  # Wh per interval
    reset_at: int | None  # after this many intervals the register restarts from reset_to
    reset_to: int
    unit: str  # 1.6: Wh or kWh; 2.0.1: Wh (multiplier 0) or kWh via multiplier 3
    phases: bool  # per-phase registers (L1..L3) next to the overall one
    signed_every: int  # 1.6: every n-th sample also (or only) as SignedData; 0: none
    signed_only: bool
    begin_early_ms: int
    phases_only: bool = False  # only the per-phase registers, no overall one (their sum is the overall value)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.interval_s * len(self.increments))

    def registers(self) -> list[int]:
        """The register after each interval (before: ``register_wh``)."""
        out, r = [], self.register_wh
        for i, inc in enumerate(self.increments):
            if self.reset_at is not None and i == self.reset_at:
                r = self.reset_to
            r += inc
            out.append(r)
        return out

    def metered_wh(self) -> Decimal:
        """Ground truth from the script: every increment, and the register value a reset restarted from."""
        return D(sum(self.increments) + (self.reset_to if self.reset_at is not None else 0))


@st.composite
def scripts(draw: st.DrawFn, *, phases_only: bool = False, version: str | None = None) -> Script:
    """A charger script; ``phases_only``: its energy register only per phase (L1..L3, no overall value)."""
    version = version or draw(st.sampled_from(["1.6", "2.0.1"]))
    n = draw(st.integers(1, 30))
    interval = draw(st.sampled_from([60, 300, 900]))
    # up to 10.8 kW (3 Wh per second): within what the test chargers' connectors deliver (no plausibility hold)
    increments = tuple(draw(st.lists(st.integers(0, 3 * interval), min_size=n, max_size=n)))
    reset = draw(st.one_of(st.none(), st.integers(1, n - 1))) if n > 1 else None
    script = Script(
        version,
        draw(start_instants()),
        draw(st.integers(20, 10**8)),
        interval,
        increments,
        reset,
        draw(st.integers(0, 15)),
        draw(st.sampled_from(["Wh", "kWh"])),
        draw(st.booleans()),
        draw(st.sampled_from([0, 0, 1, 2, 3])) if version == "1.6" and not phases_only else 0,
        draw(st.booleans()),
        draw(st.integers(0, 50)),
        phases_only,
    )
    if script.reset_at is not None:
        # A reset is a register that goes back by more than the documented 10 Wh rounding tolerance
        # (docs/gateway.md, kernel.meter_reading.RESET_TOLERANCE_WH); a smaller step back is rounding.
        regs = [script.register_wh, *script.registers()]
        assume(regs[script.reset_at] - regs[script.reset_at + 1] > 10)
        # Signed-only samples around a reset hide it: the plain readings left may step back within the
        # tolerance (a signature is never read as a value), so the script's own truth is not observable.
        assume(not script.signed_only)
    return script


def _value(script: Script, at: datetime, wh: int, context: str, index: int) -> dict[str, Any]:
    """One meterValue of the register (and its phases, its signature) as the script's charger sends it."""
    v = script.version
    if v == "1.6":
        text = str(D(wh) / 1000) if script.unit == "kWh" else str(wh)
        values = []
        signed = script.signed_every and index % script.signed_every == 0 and context == "Sample.Periodic"
        if not (signed and script.signed_only):
            values.append(frames.sampled_value(v, text, context, unit=script.unit))
        if signed:
            values.append(frames.sampled_value(v, 0, context, signed=f'OCMF|{{}}|{{"RV":{wh}}}'))
    else:
        if script.unit == "kWh":
            values = [frames.sampled_value(v, D(wh) / 1000, context, unit="Wh", multiplier=3)]
        else:
            values = [frames.sampled_value(v, D(wh), context)]
    if script.phases_only:
        values = [x for x in values if "format" in x]  # a 1.6 signature stays
    if script.phases or script.phases_only:
        third = wh // 3
        for phase, part in (("L1", third), ("L2", third), ("L3", wh - 2 * third)):
            values.append(frames.sampled_value(v, str(part) if v == "1.6" else D(part), context, phase=phase))
    return frames.meter_value(at, values)


def meter_frames(script: Script) -> tuple[list[dict[str, Any]], Decimal | None, Decimal | None]:
    """The meterValues the charger sends for the session, and the meter start/stop of its transaction
    messages (1.6 StartTransaction / StopTransaction; 2.0.1: from the Begin / End readings)."""
    regs = script.registers()
    out = [_value(script, script.start - timedelta(milliseconds=script.begin_early_ms), script.register_wh,
                  "Transaction.Begin", 0)]  # fmt: skip
    for i, r in enumerate(regs[:-1], start=1):
        out.append(
            _value(script, script.start + timedelta(seconds=script.interval_s * i), r, "Sample.Periodic", i)
        )
    out.append(_value(script, script.end, regs[-1], "Transaction.End", len(regs)))
    if script.version == "1.6":
        start = frames.start_transaction(1, "TOKEN", script.register_wh, script.start)
        stop = frames.stop_transaction(1, "TOKEN", regs[-1], script.end, "EVDisconnected", [])
        return out, D(start["meterStart"]), D(stop["meterStop"])
    return out, None, None


TOKEN = "AABBCC01"
"""The id token the scripts charge with (the gateway tests' fleet token)."""


def v16_start(script: Script, connector: int = 1) -> dict[str, Any]:
    """The 1.6 StartTransaction of the script."""
    return frames.start_transaction(connector, TOKEN, script.register_wh, script.start)


def v16_after_start(script: Script, tx: int, connector: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """The 1.6 messages after the StartTransaction: one MeterValues per meterValue (the Begin reading first),
    then the StopTransaction with the End reading as its transactionData."""
    mvs, _start, stop = meter_frames(script)
    out: list[tuple[str, dict[str, Any]]] = [
        ("MeterValues", frames.meter_values(connector, tx, [mv])) for mv in mvs[:-1]
    ]
    assert stop is not None
    out.append(
        (
            "StopTransaction",
            frames.stop_transaction(tx, TOKEN, int(stop), script.end, "EVDisconnected", [mvs[-1]]),
        )
    )
    return out


def v201_events(script: Script, tx: str, evse: int = 1) -> list[dict[str, Any]]:
    """The 2.0.1 TransactionEvents of the script: Started (with the Begin reading), one Updated per sample,
    Ended (with the End reading); seqNo 0..n."""
    mvs, _start, _stop = meter_frames(script)
    out = [frames.transaction_event("Started", script.start, 0, tx, evse, "Authorized", TOKEN, [mvs[0]])]
    for i, mv in enumerate(mvs[1:-1], start=1):
        at = datetime.fromisoformat(mv["timestamp"].replace("Z", "+00:00"))
        out.append(frames.transaction_event("Updated", at, i, tx, evse, "MeterValuePeriodic", None, [mv]))
    out.append(
        frames.transaction_event(
            "Ended", script.end, len(mvs) - 1, tx, evse, "EVDeparted", TOKEN, [mvs[-1]], "EVDisconnected"
        )
    )
    return out
