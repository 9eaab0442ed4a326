"""``evhub demo``: the whole hub on embedded SQLite, with simulated chargers, an eMSP partner and a grid feed.

It walks the money path once and shows what happened at each step:

1. a sample network: two CPOs with locations in two time zones, chargers (OCPP 1.6 and 2.0.1), a fleet with
   tokens and a portal login, a time-of-day tariff per CPO, grid-load rules, split agreements;
2. the hub starts (OCPP listener, HTTP app, scheduler) exactly as ``evhub serve`` does;
3. a simulated eMSP registers through the real OCPI credentials handshake and pushes its drivers' tokens;
4. simulated chargers run sessions on an accelerated clock while a simulated grid feed moves the price; one
   of them (:data:`SIGNING_CHARGER`) has a signing meter whose key pair is made at the demo's start, and
   sends signed OCMF readings at each Begin and End next to the plain ones (its public key is provisioned);
5. ended sessions become priced CDRs (with the engine's explanation and the outcome of each session's signed
   meter data: verified, unverifiable or invalid; and how many sessions are held for review), pushed to the
   eMSP through the outbox, and receipts are mailed to a local SMTP sink; the external CPO BE*ION posts the CDR
   of a fleet card's session at its charger to the hub, its eMSP (:mod:`evhub.demo_received`): stored once,
   pushed nowhere, billed on the fleet's invoice at the CPO's price and settled as NL*EVH's debt to BE*ION;
6. a settlement run splits the money among CPO, eMSP, hub and site host;
7. billing (:mod:`evhub.demo_billing`): the fleet's November invoice, collected through localstripe with the
   official Stripe SDK, a declined card, dunning to a block the gateway enforces, the block lifted on payment;
   November's B2B documents from the closed settlement; an app driver's per-session invoice as her receipt.

Everything is real: real sockets on loopback, the real database, the real protocols.

Every run prints the same figures: the simulation starts at a fixed evening (:data:`LOCAL_START`, not today),
the hub's clock is pinned to it (``EVHUB_CLOCK_START`` semantics: it then runs on at the real rate, so the
portal's current month is the demo's), the simulators are seeded and their timestamps come from simulated
timelines rather than from how fast this machine answers, and the grid feed posts its day-ahead forecast before
the chargers start. Only ids, ports, paths and hashes over ids differ (and the signing meter's key and its
signatures, never printed). The key figures are also written to
``summary.json`` in the work folder. The chargers run :data:`ACCELERATION` times faster than the wall
clock, or ``EVHUB_DEMO_ACCELERATION`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, select

from evhub import provisioning as prov
from evhub.app import RunningHub
from evhub.demo_billing import (
    WEBHOOK_SECRET,
    BillingAct,
    add_issuer_and_account,
    app_driver_session,
    documents_between_parties,
    run_billing_act,
)
from evhub.demo_received import on_the_invoice, pushed_to_partners, receive_from_cpo
from kernel import logs
from kernel.energy import format_kwh
from kernel.models import Cdr, ChargingSession, Location, OutboxMessage, PricingState, TariffVersion
from kernel.money import format_amount
from kernel.ports import free_port
from kernel.settings import Settings, SettingsError, load_settings
from kernel.signed_meter import describe, public_key_base64
from kernel.timeutil import to_local, utcnow, zone
from simulators.cpo import CpoSimulator
from simulators.localstripe import PUBLISHABLE_KEY as STRIPE_PUBLISHABLE_KEY
from simulators.localstripe import SECRET_KEY as STRIPE_SECRET_KEY
from simulators.localstripe import LocalStripe
from simulators.signing_meter import SigningMeter

LOCAL_START = datetime(2026, 11, 17, 18, 0, tzinfo=zone("Europe/Amsterdam"))
"""Where the simulated evening begins (a Tuesday in mid-month: the sessions and the settlement stay in one month)."""
ACCELERATION = 1500.0
"""How much faster than the wall clock the simulated chargers run, unless ``EVHUB_DEMO_ACCELERATION`` says."""

DATA = Path(__file__).resolve().parent / "demo_data"
console = Console(width=None if sys.stdout.isatty() else 120)
log = logging.getLogger(__name__)

CHARGER_PASSWORD = "demo-charger-secret"
MANAGER_EMAIL = "manager@acme-logistics.example"
MANAGER_PASSWORD = "demo-portal-pass"
FLEET_TOKENS = [  # uid, driver, email, vehicle, monthly limit
    ("04A1B2C3D4", "Ann de Vries", "ann@acme-logistics.example", "Van NL-123-X", "300"),
    ("04B2C3D4E5", "Bram Jansen", "bram@acme-logistics.example", "Van NL-456-Y", "300"),
    ("04C3D4E5F6", "Chloe Smith", "chloe@acme-logistics.example", "Car GB-789-Z", "150"),
]
EMSP_TOKENS = ["DE0EMS00000001"]
"""Cards of DE*EMS, an eMSP on OCPI 2.2.1 that registers with the hub."""
EMSP_211_TOKENS = ["FR0MOB00000001"]
"""Cards of FR*MOB, an eMSP still on OCPI 2.1.1 that the hub registers with."""
DEPLOY_STATUS, DEPLOY_REFUSALS = 503, 2
"""FR*MOB answers its first CDR pushes 503 (a deploy): the outbox retries them."""
CHARGERS = [  # identity, OCPP version, location, EVSE uids, max power W
    ("AMS-CP-1", "1.6", "AMS-CENTRAAL", ["AMS-01-1", "AMS-01-2"], 11000.0),
    ("AMS-CP-2", "2.0.1", "AMS-CENTRAAL", ["AMS-02-1"], 50000.0),
    ("LDN-CP-1", "1.6", "LDN-KINGSX", ["LDN-01-1"], 11000.0),
]
SIGNING_CHARGER = "AMS-CP-2"
"""The charger with a signing (Eichrecht) meter: signed OCMF at each Begin and End, its public key provisioned."""
AGREEMENTS: list[dict[str, Any]] = [
    {
        "kind": "roaming",
        "agreement_id": "roam-ems-amp",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "DE*EMS",
        "cpo": "NL*AMP",
    },
    {
        "kind": "roaming",
        "agreement_id": "roam-ems-ldn",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "DE*EMS",
        "cpo": "GB*LDN",
    },
    {
        "kind": "roaming",
        "agreement_id": "roam-mob-amp",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "FR*MOB",
        "cpo": "NL*AMP",
    },
    {
        "kind": "roaming",
        "agreement_id": "roam-mob-ldn",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "FR*MOB",
        "cpo": "GB*LDN",
    },
    {
        "kind": "roaming",
        "agreement_id": "roam-evh-amp",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "NL*EVH",
        "cpo": "NL*AMP",
    },
    {
        "kind": "roaming",
        "agreement_id": "roam-evh-ldn",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "NL*EVH",
        "cpo": "GB*LDN",
    },
    {  # BE*ION, an external CPO: the hub is NL*EVH's eMSP there, and settles its CDRs on the eMSP side only
        "kind": "roaming",
        "agreement_id": "roam-evh-ion",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "NL*EVH",
        "cpo": "BE*ION",
    },
    {
        "kind": "hub_fee",
        "agreement_id": "hub-fee-eur",
        "version": 1,
        "valid_from": "2026-01-01",
        "hub": "NL*HUB",
        "currency": "EUR",
        "percentage": "0.04",
        "fixed_per_session": "0.15",
        "maximum_per_session": "2.00",
        "vat_rates": {"NLD": "0.21", "GBR": "0.20"},
    },
    {
        "kind": "hub_fee",
        "agreement_id": "hub-fee-gbp",
        "version": 1,
        "valid_from": "2026-01-01",
        "hub": "NL*HUB",
        "currency": "GBP",
        "percentage": "0.04",
        "fixed_per_session": "0.12",
        "vat_rates": {"GBR": "0.20"},
    },
    {
        "kind": "site_host",
        "agreement_id": "site-ams-centraal",
        "version": 1,
        "valid_from": "2026-01-01",
        "site_host": "NL*SIT",
        "cpo": "NL*AMP",
        "location_id": "AMS-CENTRAAL",
        "share_percentage": "0.10",
    },
]


@dataclass
class Demo:
    """What the demo started, so it can show and stop it."""

    workdir: Path
    settings: Settings
    hub: RunningHub | None = None
    emsp: Any = None
    emsp_211: Any = None
    partner_211: int | None = None
    cpo: CpoSimulator | None = None  # an external CPO whose eMSP, for NL*EVH's cards, the hub is
    sink: Any = None
    fleet: Any = None
    api_key: str = ""
    ocpi_versions_url: str = ""
    grid_changes: list[tuple[datetime, Decimal, list[dict]]] = field(default_factory=list)
    acceleration: float = ACCELERATION
    meters: dict[str, SigningMeter] = field(default_factory=dict)
    signed: dict[int, str] = field(default_factory=dict)  # CDR id -> its session's signed meter data outcome
    stripe: LocalStripe | None = None  # the payment provider (localstripe) billing collects through
    billing_account: int | None = None  # Acme Logistics' account with the issuer NL*EVH


def demo_acceleration() -> float:
    """:data:`ACCELERATION`, or ``EVHUB_DEMO_ACCELERATION`` (a number > 0; else a ``SettingsError`` naming it)."""
    raw = os.environ.get("EVHUB_DEMO_ACCELERATION", "").strip()
    if not raw:
        return ACCELERATION
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise SettingsError(f"EVHUB_DEMO_ACCELERATION must be a number > 0, not {raw!r}")
    return value


def _section(title: str, body: str = "") -> None:
    console.print()
    console.print(
        Panel(body or "", title=f"[bold]{title}[/]", expand=True) if body else f"[bold cyan]== {title}[/]"
    )


async def provision(demo: Demo) -> None:
    """The sample network, through the same provisioning functions as the CLI."""
    from kernel.apiauth import create_key
    from portal.admin import add_fleet, add_manager
    from settlement.agreement_store import add_agreements
    from tariffs.dynamic import attach_rules

    assert demo.hub is not None
    db = demo.hub.db
    async with db.session() as db_session:
        for cc, pid, role, name in [
            ("NL", "AMP", "CPO", "AmsterPower"),
            ("GB", "LDN", "CPO", "London Charge Co"),
            ("NL", "HUB", "HUB", "evhub"),
            ("NL", "EVH", "EMSP", "evhub Fleet Services"),
            ("NL", "SIT", "SITE_HOST", "Station Parking BV"),
        ]:
            await prov.add_party(db_session, cc, pid, role, name)
        for loc in json.loads((DATA / "locations.json").read_text()):
            await prov.import_location(
                db_session, loc, grid_zone="NL-NH" if loc["country_code"] == "NL" else "GB-LON"
            )
        for tariff in prov.load_json((DATA / "tariffs.json").read_text(), "demo tariffs"):
            await prov.import_tariff(db_session, tariff)
        for identity, version, location, evses, _power in CHARGERS:
            charger = await prov.add_charger(
                db_session,
                identity,
                password=CHARGER_PASSWORD,
                location=location,
                evse_uids=evses,
                ocpp_version=version,
            )
            if identity == SIGNING_CHARGER:  # as `evhub chargers update --meter-public-key` stores it
                meter = demo.meters[identity] = SigningMeter(serial=f"{identity}-EM")
                charger.meter_public_key = public_key_base64(meter.public_key_hex)
        cpo = await prov.find_party(db_session, "NL*AMP", prov.PartyRole.CPO)
        await attach_rules(
            db_session,
            "NL-NH",
            cpo.id,
            "AMS-TOD",
            json.loads((DATA / "grid_rules.json").read_text()),
            hysteresis=Decimal(5),
            min_hold_s=1800,
        )
        await add_agreements(db_session, AGREEMENTS)
        demo.api_key = await create_key(db_session, "demo-operator", None)
    await add_fleet(db, "Acme Logistics", "EUR")
    await add_manager(db, "Acme Logistics", MANAGER_EMAIL, MANAGER_PASSWORD, name="Fleet Manager")
    async with db.session() as db_session:
        for uid, driver, email, vehicle, limit in FLEET_TOKENS:
            await prov.add_token(
                db_session,
                prov.TokenSpec(
                    uid=uid,
                    issuer_party="NL*EVH",
                    fleet="Acme Logistics",
                    driver_name=driver,
                    driver_email=email,
                    vehicle=vehicle,
                    monthly_limit=limit,
                    currency="EUR",
                ),
            )
    demo.billing_account = await add_issuer_and_account(demo.hub)
    table = Table(show_header=True, box=None)
    for col in ("what", "details"):
        table.add_column(col)
    table.add_row(
        "CPOs", "NL*AMP AmsterPower (Europe/Amsterdam, EUR), GB*LDN London Charge Co (Europe/London, GBP)"
    )
    table.add_row(
        "partners",
        "DE*EMS simulated eMSP (OCPI 2.2.1), FR*MOB simulated eMSP (OCPI 2.1.1), NL*EVH evhub Fleet Services, NL*SIT site host",
    )
    table.add_row("chargers", ", ".join(f"{c[0]} (OCPP {c[1]}, {len(c[3])} EVSE)" for c in CHARGERS))
    table.add_row(
        "signed meter",
        f"{SIGNING_CHARGER}: ECDSA secp256r1 key pair made for this run, public key provisioned; "
        "signs OCMF at each Begin and End",
    )
    table.add_row(
        "tariffs",
        "AMS-TOD: EUR 0.39/kWh day, 0.29/kWh 23:00-07:00, 0.50 start, parking 6.00/h; "
        "LDN-STD: GBP 0.45/kWh + 3.00/h",
    )
    table.add_row(
        "grid rules",
        "zone NL-NH: load >= 80 % energy +0.10/kWh; load < 30 % energy x0.8 "
        "(5-point hysteresis, 30-min hold)",
    )
    table.add_row(
        "fleet",
        f"Acme Logistics: {len(FLEET_TOKENS)} tokens with monthly limits; portal login {MANAGER_EMAIL}",
    )
    table.add_row("agreements", f"{len(AGREEMENTS)}: roaming, hub fee 4 % + fixed, site host 10 % of energy")
    table.add_row(
        "billing",
        "issuer NL*EVH (EUR, 14 days, the default dunning schedule); Acme Logistics' account, billed monthly; "
        "payments through localstripe (Stripe's API on this machine)",
    )
    console.print(table)


async def _push_tokens(emsp: Any, uids: list[str]) -> None:
    """The eMSP simulator ``emsp`` pushes a token for each of ``uids`` (in its own OCPI version); an error
    answer stops the demo."""
    for uid in uids:
        response = await emsp.push_token(emsp.make_token(uid))
        response.raise_for_status()


async def register_emsp(demo: Demo) -> None:
    """The eMSP simulator registers with the hub (credentials handshake) and pushes its tokens."""
    from ocpi.partners import invite_partner
    from simulators.emsp import EmspSimulator

    assert demo.hub is not None
    invitation = await invite_partner(
        demo.hub.db, demo.settings.public_url, "Simulated eMSP", roles=[("DE", "EMS", "EMSP")]
    )
    demo.ocpi_versions_url = invitation.versions_url
    demo.emsp = EmspSimulator(country_code="DE", party_id="EMS", name="Simulated eMSP")
    await demo.emsp.start(0)
    await demo.emsp.register(invitation.versions_url, invitation.token_a)
    await _push_tokens(demo.emsp, EMSP_TOKENS)
    console.print(
        f"eMSP DE*EMS registered through the OCPI 2.2.1 handshake (token A -> B -> C) at "
        f"{invitation.versions_url}; pushed {len(EMSP_TOKENS)} token(s)"
    )


async def register_emsp_211(demo: Demo) -> None:
    """The hub registers with an eMSP that speaks only OCPI 2.1.1 (the other direction of the handshake); the
    eMSP then pushes its tokens in 2.1.1 form."""
    from ocpi.partners import register_partner
    from simulators.emsp import EmspSimulator

    assert demo.hub is not None
    demo.emsp_211 = EmspSimulator(
        country_code="FR", party_id="MOB", name="Simulated eMSP (OCPI 2.1.1)", version="2.1.1"
    )
    await demo.emsp_211.start(0)
    partner = await register_partner(
        demo.hub.db, demo.settings.public_url, demo.emsp_211.versions_url, demo.emsp_211.token_a
    )
    await _push_tokens(demo.emsp_211, EMSP_211_TOKENS)
    demo.partner_211 = partner.id
    # FR*MOB is mid-deploy when its first CDRs arrive: it answers 503 to them; the outbox retries with backoff
    demo.emsp_211.misbehave("error", status=DEPLOY_STATUS, count=DEPLOY_REFUSALS, paths=("/cdrs",))
    console.print(
        f"the hub registered with eMSP FR*MOB, which speaks only OCPI {partner.version} (negotiated in its "
        f"versions list); pushed {len(EMSP_211_TOKENS)} token(s) in 2.1.1 form"
    )


async def register_cpo(demo: Demo) -> None:
    """An external CPO (BE*ION) registers with the hub for the hub's hosted eMSP NL*EVH: the hub is its eMSP,
    pushes it NL*EVH's cards and answers its real-time authorizations (the billing act shows a dunning block
    reach it)."""
    from ocpi.partners import invite_partner

    assert demo.hub is not None
    invitation = await invite_partner(
        demo.hub.db, demo.settings.public_url, "Simulated CPO", roles=[("BE", "ION", "CPO")]
    )
    demo.cpo = CpoSimulator(country_code="BE", party_id="ION", name="Simulated CPO")
    await demo.cpo.start(0)
    own = await demo.cpo.register(invitation.versions_url, invitation.token_a)
    emsps = ", ".join(f"{r['country_code']}*{r['party_id']}" for r in own["roles"] if r["role"] == "EMSP")
    listed = await demo.cpo.list_tokens("NL*EVH")
    console.print(
        f"CPO BE*ION registered (OCPI 2.2.1) with the hub as the eMSP {emsps}: {len(listed)} fleet card(s) on "
        "the hub's tokens Sender, pushed to its tokens Receiver as they change",
        soft_wrap=True,
    )


async def show_partner_health(demo: Demo) -> tuple[int, bool]:
    """FR*MOB's refusals during its simulated deploy, and whether the hub sees it healthy again (nothing
    parked, nothing failing): a partner that fails is retried, never dropped."""
    from ocpi.partners import partner_health

    assert demo.hub is not None and demo.partner_211 is not None
    refused = sum(1 for r in demo.emsp_211.log if r.answered == DEPLOY_STATUS)
    health = await partner_health(demo.hub.db, demo.partner_211)
    healthy = bool(health and health["healthy"])
    parked = health["outbox"]["parked"] if health else 0
    console.print(
        f"FR*MOB answered HTTP {DEPLOY_STATUS} to {refused} CDR push(es) during a simulated deploy: retried with "
        f"backoff, {parked} parked, partner healthy again: {'yes' if healthy else 'no'}",
        soft_wrap=True,
    )
    return refused, healthy


async def grid_feed(demo: Demo, zone_name: str, start: datetime) -> None:
    """Post the grid operator's day-ahead load forecast for ``zone_name`` (15-minute steps from ``start``).

    All of it is posted before the chargers start, so every session is priced against the same tariff versions
    whatever the timing of this run (a feed racing the chargers would make the prices depend on it)."""
    from simulators.grid import GridFeed, load_curve

    assert demo.hub is not None
    feed = GridFeed(demo.hub.hub.endpoints["http"], zone_name, demo.api_key)
    async with httpx.AsyncClient(timeout=10) as client:  # one client (and TLS context) for the 96 samples
        for at, load in load_curve(start, timedelta(minutes=15), 4 * 24, seed=11):
            published = await feed.post(at, load, client)
            if published:
                demo.grid_changes.append((at, load, published))


async def run_chargers(demo: Demo, start: datetime) -> int:
    """Simulated chargers run sessions on an accelerated clock until each did its share."""
    from simulators.chargepoints import ChargerFleet, ChargerSpec

    assert demo.hub is not None
    tokens = [t[0] for t in FLEET_TOKENS] + EMSP_TOKENS + EMSP_211_TOKENS
    rng = random.Random(2026)
    specs = [
        ChargerSpec(
            identity=identity,
            password=CHARGER_PASSWORD,
            version=version,
            tokens=rng.sample(tokens, k=len(tokens)),
            connectors=len(evses),
            max_power_w=power,
            idle_s=(600.0, 2400.0),
            energy_wh=(6000.0, 28000.0),
            meter=demo.meters.get(identity),
        )
        for identity, version, _loc, evses, power in CHARGERS
    ]
    ocpp_url = f"ws://127.0.0.1:{demo.settings.ocpp_port}/ocpp"
    await grid_feed(demo, "NL-NH", start)
    demo.fleet = ChargerFleet(
        specs, ocpp_url, acceleration=demo.acceleration, sessions_per_charger=3, start_time=start
    )
    await demo.fleet.start()
    await demo.fleet.wait_connected(timeout=30)
    want = 3 * len(specs)
    done = await demo.fleet.wait_sessions(want, timeout=240)
    await demo.fleet.stop()
    return done


async def wait_for_money_path(demo: Demo, timeout: float = 60.0) -> None:
    """Until every ended session is priced and every message in the outbox is delivered."""
    assert demo.hub is not None
    db = demo.hub.db
    pricing = demo.hub.hub.services.pricing
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if pricing is not None:
            await pricing.run_once()
        async with db.session() as db_session:
            pending_sessions = await db_session.scalar(
                select(func.count())
                .select_from(ChargingSession)
                .where(ChargingSession.pricing_state == "pending")
            )
            pending_out = await db_session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
            )
        if not pending_sessions and not pending_out:
            return
        await asyncio.sleep(0.1)
    console.print("[yellow]some deliveries are still pending; they will be retried by the outbox[/]")


async def show_grid(demo: Demo) -> None:
    assert demo.hub is not None
    async with demo.hub.db.session() as db_session:
        versions = (
            await db_session.scalars(
                select(TariffVersion).where(TariffVersion.source == "grid").order_by(TariffVersion.version)
            )
        ).all()
    table = Table("valid from (Amsterdam)", "load", "version", "energy price", box=None)
    loads = {at: load for at, load, _ in demo.grid_changes}
    for v in versions:
        assert v.start_date_time is not None, "a grid price change starts at its sample's time"
        energy = [
            pc["price"]
            for el in v.data["elements"]
            for pc in el["price_components"]
            if pc["type"] == "ENERGY"
        ]
        table.add_row(
            to_local(v.start_date_time, "Europe/Amsterdam").strftime("%a %H:%M"),
            f"{loads.get(v.start_date_time, '?')} %",
            str(v.version),
            " / ".join(f"EUR {p}" for p in energy),
        )
    console.print(table if versions else "no grid price change in this run")


async def show_cdrs(demo: Demo) -> list[Cdr]:
    """The priced CDRs with their session's signed meter data outcome; records that outcome per CDR (its
    ``data["signed"]``, as :func:`cdr_figures` reports it) and returns the CDRs."""
    assert demo.hub is not None
    async with demo.hub.db.session() as db_session:
        rows = (
            await db_session.execute(
                select(Cdr, Location, ChargingSession)
                .join(Location, Cdr.location_id == Location.id)
                .join(ChargingSession, Cdr.session_id == ChargingSession.id)
                .order_by(Cdr.start_date_time)
            )
        ).all()
    table = Table(
        "session",
        "location",
        "local start",
        "local end",
        "kWh",
        "total incl. VAT",
        "token",
        "tariff versions",
        "signed",
        box=None,
    )
    for cdr, loc, charging_session in rows:
        tz = zone(loc.time_zone)
        signed = describe(charging_session.signed_verification, charging_session.signed_verification_reason)
        demo.signed[cdr.id] = signed or "none"
        table.add_row(
            str(cdr.data.get("session_id", ""))[:8],
            loc.ocpi_id,
            cdr.start_date_time.astimezone(tz).strftime("%a %H:%M %Z"),
            cdr.end_date_time.astimezone(tz).strftime("%H:%M %Z"),
            format_kwh(cdr.total_energy_kwh),
            format_amount(cdr.total_cost_incl_vat or 0, cdr.currency),
            str(cdr.data.get("cdr_token", {}).get("uid", "")),
            str(len(cdr.tariff_versions)),
            signed or "-",
        )
    console.print(table)
    outcomes: dict[str, int] = {}
    for outcome in demo.signed.values():
        if outcome != "none":
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    counted = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "none"
    console.print(
        f"signed meter data ({SIGNING_CHARGER}'s meter, checked with its provisioned public key): {counted}; "
        f"{len(demo.signed) - sum(outcomes.values())} CDR(s) without signed data",
        soft_wrap=True,
    )
    return [c for c, _, _ in rows]


async def show_held(demo: Demo) -> int:
    """How many sessions are held for review (implausible or incomplete: never priced until released), and
    why; 0 in a normal run."""
    assert demo.hub is not None
    async with demo.hub.db.session() as db_session:
        reasons = (
            await db_session.scalars(
                select(ChargingSession.review_reason)
                .where(ChargingSession.pricing_state == PricingState.HELD)
                .order_by(ChargingSession.review_reason)
            )
        ).all()
    console.print(
        f"{len(reasons)} session(s) held for review" if reasons else "0 sessions held for review",
        soft_wrap=True,
    )
    for reason in reasons:
        console.print(f"  held: {reason or 'no reason given'}", soft_wrap=True)
    return len(reasons)


def show_explanation(cdr: Cdr) -> None:
    lines = Table("dimension", "tariff version", "quantity", "unit price", "excl. VAT", "incl. VAT", box=None)
    for line in cdr.explanation.get("lines", []):
        lines.add_row(
            str(line.get("dimension")),
            str(line.get("tariff_version", ""))[:20],
            str(line.get("quantity")),
            str(line.get("unit_price")),
            str(line.get("amount_excl_vat")),
            str(line.get("amount_incl_vat")),
        )
    console.print(
        f"CDR {cdr.cdr_uid} ({cdr.currency}) — how the engine priced it; lines add up to the totals "
        f"{format_amount(cdr.total_cost_excl_vat, cdr.currency)} excl. / "
        f"{format_amount(cdr.total_cost_incl_vat or 0, cdr.currency)} incl. VAT:"
    )
    console.print(lines)


async def settle(demo: Demo, cdrs: list[Cdr]) -> dict[str, list[dict[str, str]]]:
    """Settle every period the CDRs fall in; returns per period each party's net, VAT and gross."""
    from settlement.core.accounting_periods import period_of
    from settlement.job import run_period

    assert demo.hub is not None
    periods = sorted({period_of(c.end_date_time).key for c in cdrs}) or [period_of(utcnow()).key]
    figures: dict[str, list[dict[str, str]]] = {}
    for period in periods:
        job = await run_period(demo.hub.db, period, out_dir=demo.workdir / "settlement")
        summary = job.result.summary
        table = Table("party", "currency", "net", "VAT", "gross", "statement sha256", box=None)
        for section in job.statements:  # each party's statement per currency
            label = section.party
            figures.setdefault(period, []).append(
                {
                    "party": label,
                    "currency": section.currency,
                    "net": str(section.net),
                    "vat": str(section.vat),
                    "gross": str(section.gross),
                }
            )
            table.add_row(
                label,
                section.currency,
                str(section.net),
                str(section.vat),
                str(section.gross),
                job.statement_hashes.get(label, "")[:16],
            )
        console.print(
            f"period {period}: {summary.cdrs_settled} CDRs, {summary.lines} lines, "
            f"{summary.cdrs_rejected} rejected; content hash {summary.content_hash[:16]}..."
        )
        console.print(table)
        console.print(f"exports (CSV, Parquet, HTML statements): {job.output_dir}")
    return figures


def same_money_211(cdrs: list[Cdr], received: list[dict[str, Any]]) -> int:
    """How many of ``cdrs`` the 2.1.1 eMSP received with exactly the CDR's total excl. VAT as total_cost."""
    got = {str(c.get("id")): c for c in received}
    same = 0
    for cdr in cdrs:
        theirs = got.get(str(cdr.data.get("id")))
        ours = cdr.data.get("total_cost", {}).get("excl_vat")
        if (
            theirs is not None
            and ours is not None
            and Decimal(str(theirs.get("total_cost"))) == Decimal(str(ours))
        ):
            same += 1
    return same


def cdr_figures(cdrs: list[Cdr], signed: dict[int, str]) -> list[dict[str, str]]:
    """What each CDR says, in the order the demo shows them (ids left out: they are fresh on every run), with
    its session's signed meter data outcome from ``signed`` (CDR id -> outcome)."""
    return [
        {
            "location": str(c.data.get("cdr_location", {}).get("id", "")),
            "evse": str(c.data.get("cdr_location", {}).get("evse_uid", "")),
            "token": str(c.data.get("cdr_token", {}).get("uid", "")),
            "start": c.start_date_time.isoformat(),
            "end": c.end_date_time.isoformat(),
            "kwh": str(c.total_energy_kwh),
            "currency": c.currency,
            "total_excl_vat": str(c.total_cost_excl_vat),
            "total_incl_vat": str(c.total_cost_incl_vat),
            "tariff_versions": str(len(c.tariff_versions)),
            "signed_meter_data": signed.get(c.id, "none"),
        }
        for c in cdrs
    ]


def headline(summary: dict[str, Any]) -> str:
    """One line of the run's key figures: sessions, energy, money per currency."""
    kwh = sum((Decimal(c["kwh"]) for c in summary["cdrs"]), Decimal(0))
    totals: dict[str, Decimal] = {}
    for c in summary["cdrs"]:
        totals[c["currency"]] = totals.get(c["currency"], Decimal(0)) + Decimal(c["total_incl_vat"])
    money = " + ".join(format_amount(v, k) for k, v in sorted(totals.items()))
    return (
        f"figures: {summary['sessions']} sessions, {format_kwh(kwh)} kWh, {money} incl. VAT, "
        f"{summary['grid_versions']} grid tariff version(s)"
    )


def command_name() -> str:
    """How the user can run evhub again from where they are: ``evhub`` if that is this one on PATH, else a path."""
    script = Path(sys.argv[0])
    if script.name != "evhub":
        return "evhub"
    on_path = shutil.which("evhub")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "evhub"
    try:
        return os.path.join(".", script.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(script.resolve())


def say(line: str) -> None:
    """A line the user may copy (a secret, a URL): printed as is, never wrapped, styled or boxed."""
    console.print(line, soft_wrap=True, markup=False, highlight=False)


async def run_demo(*, keep_running: bool = False, workdir: str | None = None) -> None:
    acceleration = demo_acceleration()
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="evhub-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    db_file = work / "kernel.db"
    if db_file.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    from portal.smtp import start_smtp_sink

    sink = await start_smtp_sink(work / "mail", host="127.0.0.1", port=0)
    stripe = await asyncio.to_thread(LocalStripe().start)
    http_port, ocpp_port = free_port(), free_port()
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{db_file}",
        http_host="127.0.0.1",
        http_port=http_port,
        ocpp_host="127.0.0.1",
        ocpp_port=ocpp_port,
        public_url=f"http://127.0.0.1:{http_port}",
        smtp_url=sink.url,
        heartbeat_interval=60,
        settlement_dir=str(work / "settlement"),
        ocpp_rate_limit=2000,  # the simulated clock runs 1500x: a minute's meter values arrive in 40 ms (10 at 6000x)
        ocpp_rate_burst=5000,
        clock_skew=7 * 24 * 3600,  # ...and its stamps run ahead of the hub's clock: not a clock fault (M8)
        portal_time_zone="Europe/Amsterdam",
        clock_start=LOCAL_START,  # the hub lives on the demo's simulated evening, whatever today is
        stripe_api_key=STRIPE_SECRET_KEY,
        stripe_publishable_key=STRIPE_PUBLISHABLE_KEY,
        stripe_api_base=stripe.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        _env_file=None,
    )
    log_file = open(work / "evhub.log", "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the demo
    logs.configure("INFO", "kv", stream=log_file)
    demo = Demo(workdir=work, settings=settings, sink=sink, acceleration=acceleration, stripe=stripe)
    console.print(Panel(f"evhub demo — everything runs on this machine, data in {work}", style="bold green"))
    try:
        demo.hub = RunningHub(settings)
        await demo.hub.start()
        _section("1. The sample network")
        await provision(demo)
        console.print(
            f"hub running: OCPP ws://127.0.0.1:{ocpp_port}/ocpp/{{id}}, HTTP {settings.public_url} "
            f"(API docs {settings.public_url}/docs)"
        )

        _section("2. Roaming partners (OCPI 2.2.1 and 2.1.1)")
        await register_emsp(demo)
        await register_emsp_211(demo)
        await register_cpo(demo)

        _section("3. Chargers charging, grid moving the price")
        start = LOCAL_START.astimezone(zone("UTC"))
        done = await run_chargers(demo, start)
        console.print(
            f"{done} sessions completed by {len(CHARGERS)} simulated chargers (OCPP 1.6 and 2.0.1), "
            f"simulated from {LOCAL_START:%a %d %b %Y %H:%M} Amsterdam time at {demo.acceleration:g}x"
        )
        console.print(
            "dynamic tariff versions published from the grid feed's day-ahead forecast "
            "(sessions pay exactly these):"
        )
        await show_grid(demo)
        await wait_for_money_path(demo)

        _section("4. Priced CDRs")
        cdrs = await show_cdrs(demo)
        held = await show_held(demo)
        if cdrs:
            show_explanation(max(cdrs, key=lambda c: len(c.explanation.get("lines", []))))
        assert demo.cpo is not None
        received_cdr, received_figures = await receive_from_cpo(
            demo.hub, demo.cpo, console, FLEET_TOKENS[0][0]
        )
        await wait_for_money_path(demo)  # its hooks' work: the driver's receipt

        _section("5. Delivered to partners and drivers")
        received = demo.emsp.received()
        roaming = sum(1 for c in cdrs if c.data.get("cdr_token", {}).get("uid") in EMSP_TOKENS)
        fleet_cards = {t[0] for t in FLEET_TOKENS}
        fleet = sum(1 for c in [*cdrs, received_cdr] if c.data.get("cdr_token", {}).get("uid") in fleet_cards)
        console.print(
            f"eMSP DE*EMS received {len(received['cdrs'])} of {roaming} CDR(s) for its drivers (POSTed once each), "
            f"{received['sessions']} session(s), {received['locations']} location(s), "
            f"{received['tariffs']} tariff version(s) over OCPI 2.2.1",
            soft_wrap=True,
        )
        received_211 = demo.emsp_211.received()
        ours_211 = [c for c in cdrs if c.data.get("cdr_token", {}).get("uid") in EMSP_211_TOKENS]
        same_money = same_money_211(ours_211, demo.emsp_211.cdrs)
        console.print(
            f"eMSP FR*MOB received {len(received_211['cdrs'])} of {len(ours_211)} CDR(s) in OCPI 2.1.1 form "
            f"({same_money} with the same total_cost as the CDR, excl. VAT), {received_211['sessions']} "
            f"session(s), {received_211['locations']} location(s), {received_211['tariffs']} tariff version(s)",
            soft_wrap=True,
        )
        refused, healthy = await show_partner_health(demo)
        received_figures["pushed"] = await pushed_to_partners(demo.hub, received_cdr)
        console.print(
            f"CDR {received_figures['id']} received from CPO BE*ION: pushed to {received_figures['pushed']} "
            "partner(s) — it is the CPO's, never sent on",
            soft_wrap=True,
        )
        messages = sink.messages()
        console.print(
            f"{len(messages)} receipt email(s) for {fleet} fleet session(s) delivered to the local SMTP "
            f"sink: {work / 'mail'}",
            soft_wrap=True,
        )

        _section("6. Settlement")
        settlement = await settle(demo, [*cdrs, received_cdr])

        _section("7. Billing: the month's invoice, collection, dunning")
        assert demo.billing_account is not None
        act = BillingAct(
            demo.hub,
            settings,
            stripe,
            work,
            console,
            sink,
            CHARGERS[0][0],
            CHARGER_PASSWORD,
            FLEET_TOKENS[0][0],
            demo.cpo,
        )
        invoicing = await run_billing_act(act, demo.billing_account, [*cdrs, received_cdr])
        received_figures["on_invoice"] = await on_the_invoice(demo.hub, console, received_cdr)
        invoicing["between_parties"] = await documents_between_parties(act)
        invoicing["app_driver"] = await app_driver_session(act)

        summary = {
            "simulated_start": LOCAL_START.isoformat(),
            "sessions": done,
            "grid_versions": len(demo.grid_changes),
            "cdrs": cdr_figures(cdrs, demo.signed),
            "held_sessions": held,
            "received_cdr": received_figures,
            "emsp_cdrs_received": len(received["cdrs"]),
            "emsp_211_cdrs_received": len(received_211["cdrs"]),
            "emsp_211_same_money": same_money,
            "emsp_211_refused_then_retried": refused,
            "emsp_211_healthy": healthy,
            "receipts": len(messages),
            "settlement": settlement,
            "invoices": invoicing,
        }
        (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        console.print()
        say(headline(summary))
        say(
            f"(the same on every run; ids and the hashes over them are new each time; {work / 'summary.json'})"
        )

        month = LOCAL_START.strftime("%Y-%m")
        if keep_running:
            _section("The hub keeps running (Ctrl-C to stop)")
            say(
                f"the hub's clock runs on from {LOCAL_START:%d %b %Y %H:%M} Amsterdam time (the demo's evening)"
            )
            say(f"fleet portal:     {settings.public_url}/portal/?month={month}")
            say(f"portal login:     {MANAGER_EMAIL}")
            say(f"portal password:  {MANAGER_PASSWORD}")
            say(f"API docs:         {settings.public_url}/docs  (Authorize with the API key)")
            say(f"API key:          {demo.api_key}")
            say(f"OCPI versions:    {demo.ocpi_versions_url}  (as DE*EMS: Authorization: Token ...)")
            say(f"partner token:    {demo.emsp.hub_token}")
            say(f"OCPP:             ws://127.0.0.1:{ocpp_port}/ocpp/AMS-CP-1  (or any charger id above)")
            say(f"charger password: {CHARGER_PASSWORD}")
            say(f"receipts:         {work / 'mail'}")
            say(f"invoices:         {settings.public_url}/portal/billing  (the fleet manager's billing page)")
            say(f"payments:         {stripe.url}  (localstripe, key {STRIPE_SECRET_KEY})")
            say(f"logs:             {work / 'evhub.log'}")
            await asyncio.Event().wait()
        else:
            console.print()
            console.print(f"[green]demo complete[/] — logs {work / 'evhub.log'}")
            say("to explore the portal and API afterwards, run:")
            say(f"  {command_name()} demo --keep-running")
            if Path("Makefile").is_file():
                say("  (or: make demo ARGS=--keep-running)")
    finally:
        if demo.fleet is not None:
            with contextlib.suppress(Exception):
                await demo.fleet.stop()
        if demo.emsp is not None:
            await demo.emsp.stop()
        if demo.emsp_211 is not None:
            await demo.emsp_211.stop()
        if demo.cpo is not None:
            await demo.cpo.stop()
        if demo.hub is not None:
            await demo.hub.stop()
        await sink.stop()
        stripe.stop()
        log_file.close()
