"""``evhub demo`` runs the whole money path on embedded SQLite, shows every step, and prints the same figures on
every run, on any calendar day.

Two real demo processes run side by side (module fixture): one whose clock starts at the last minute of a month
(``EVHUB_CLOCK_START=2026-11-30T23:59:00Z``) and stays up with ``--keep-running``, one at the last minute of a year
that runs to its end. Both must print the figures recorded below: same sessions, energies, prices and settlement.
They simulate at the demo's own 1500x (faster, with ``EVHUB_DEMO_ACCELERATION=6000``, the kept-running demo
sometimes did not stop on SIGINT under load: issue 11 notes).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel.energy import format_kwh

EVHUB = str(Path(sys.executable).with_name("evhub"))
MONTH_END = "2026-11-30T23:59:00Z"
YEAR_END = "2026-12-31T23:59:00Z"
ACCELERATION = "1500"

pytestmark = pytest.mark.skipif(
    os.environ.get("EVHUB_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the demo runs on the embedded SQLite default; covered by the SQLite run",
)

# The demo's key figures (evhub/demo.py LOCAL_START, seeded simulators). A change of the demo's data, tariffs or
# simulators changes them: then look at the new figures and record them here.
EXPECTED_CDRS = [  # location, token, local start (ISO, UTC), kWh, currency, total incl. VAT
    ("LDN-KINGSX", "FR0MOB00000001", "2026-11-17T17:10", "11.356", "GBP", "11.05"),
    ("AMS-CENTRAAL", "04C3D4E5F6", "2026-11-17T17:31", "23.896", "EUR", "14.27"),
    ("AMS-CENTRAAL", "04A1B2C3D4", "2026-11-17T17:35", "17.631", "EUR", "11.06"),
    ("AMS-CENTRAAL", "DE0EMS00000001", "2026-11-17T17:36", "18.106", "EUR", "11.35"),
    ("LDN-KINGSX", "04C3D4E5F6", "2026-11-17T18:59", "17.706", "GBP", "21.92"),
    ("AMS-CENTRAAL", "04B2C3D4E5", "2026-11-17T18:59", "20.427", "EUR", "12.72"),
    ("AMS-CENTRAAL", "04C3D4E5F6", "2026-11-17T19:58", "9.558", "EUR", "6.28"),
    ("AMS-CENTRAAL", "FR0MOB00000001", "2026-11-17T21:37", "19.964", "EUR", "7.95"),
    ("LDN-KINGSX", "04A1B2C3D4", "2026-11-17T22:44", "23.236", "GBP", "24.55"),
]
EXPECTED_SETTLEMENT = {  # (party, currency) -> net, VAT, gross of the party's statement for 2026-11
    ("DE*EMS", "EUR"): ("-9.37", "-1.98", "-11.35"),
    ("FR*MOB", "EUR"): ("-6.56", "-1.39", "-7.95"),  # the OCPI 2.1.1 eMSP (was DE*EMS's second card: the sum
    ("FR*MOB", "GBP"): ("-9.21", "-1.84", "-11.05"),  # of both eMSPs is what DE*EMS alone paid before)
    ("GB*LDN", "GBP"): ("45.66", "9.12", "54.78"),
    ("NL*AMP", "EUR"): ("44.59", "9.39", "53.98"),
    ("BE*ION", "EUR"): ("10.00", "2.10", "12.10"),  # the external CPO's CDR, settled on the eMSP side only
    ("NL*EVH", "EUR"): ("-46.62", "-9.81", "-56.43"),  # ... NL*EVH owes BE*ION its total, no hub fee
    ("NL*EVH", "GBP"): ("-38.73", "-7.74", "-46.47"),
    ("NL*HUB", "EUR"): ("3.00", "0.64", "3.64"),
    ("NL*HUB", "GBP"): ("2.28", "0.46", "2.74"),
    ("NL*SIT", "EUR"): ("4.96", "1.05", "6.01"),
}
EXPECTED_HEADLINE = (
    "figures: 9 sessions, 161.880 kWh, 63.63 EUR + 57.52 GBP incl. VAT, 5 grid tariff version(s)"
)


@dataclass
class DemoRun:
    cwd: Path  # where the demo was started from
    output: str
    summary: dict[str, Any]
    keep_running: dict[str, str]  # label -> value of the copyable lines printed with --keep-running
    portal: dict[str, str]  # what the portal showed the fleet manager while the hub kept running


def _env(clock_start: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVHUB_")}
    return env | {"EVHUB_CLOCK_START": clock_start, "EVHUB_DEMO_ACCELERATION": ACCELERATION}


def _start(tmp: Path, name: str, clock_start: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [EVHUB, "demo", "--workdir", str(tmp / name), *extra],
        env=_env(clock_start),
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until_logs_line(proc: subprocess.Popen[str]) -> str:
    """The output of a --keep-running demo up to its last copyable line (``logs:``), or all of it if it died."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("logs:"):
            break
    return "".join(lines)


def _copyable(text: str) -> dict[str, str]:
    after = text.split("The hub keeps running", 1)[-1]
    found = {}
    for line in after.splitlines():
        label, sep, value = line.partition(":")
        if sep and label and not label.startswith(" ") and value.startswith(" "):
            found[label.strip()] = value.strip()
    return found


async def _visit_portal(lines: dict[str, str]) -> dict[str, str]:
    portal_url = lines["fleet portal"]
    base = portal_url.split("/portal", 1)[0]
    async with httpx.AsyncClient(base_url=base, follow_redirects=True, timeout=30) as client:
        page = await client.get("/portal/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text
        await client.post(
            "/portal/login",
            data={
                "email": lines["portal login"],
                "password": lines["portal password"],
                "csrf_token": csrf[1],
            },
        )
        default = await client.get("/portal/")  # the month the portal opens on by itself
        printed = await client.get(portal_url)
        api = await client.get("/api/chargers", headers={"Authorization": f"Bearer {lines['API key']}"})
    sessions = re.search(r'id="total-sessions">(\d+)<', default.text)
    month = re.search(r"<h1>Dashboard <small>([^<]+)</small>", default.text)
    return {
        "default_sessions": sessions[1] if sessions else default.text,
        "default_month": month[1] if month else default.text,
        "printed_url_status": str(printed.status_code),
        "printed_url_same_page": str(printed.text == default.text),
        "api_status": str(api.status_code),
    }


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DemoRun]]:
    """The two demo runs (month end with --keep-running, year end to its end), started together."""
    tmp = tmp_path_factory.mktemp("demo")
    kept = _start(tmp, "month-end", MONTH_END, "--keep-running")
    plain = _start(tmp, "year-end", YEAR_END)
    try:
        kept_text = _read_until_logs_line(kept)
        lines = _copyable(kept_text)
        portal = asyncio.run(_visit_portal(lines)) if "fleet portal" in lines else {}
        kept.send_signal(signal.SIGINT)
        rest, _ = kept.communicate(timeout=60)
        plain_text, _ = plain.communicate(timeout=300)
    finally:
        for proc in (kept, plain):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert plain.returncode == 0, plain_text

    def summary(name: str) -> dict[str, Any]:
        path = tmp / name / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}

    yield {
        "month-end": DemoRun(tmp, kept_text + rest, summary("month-end"), lines, portal),
        "year-end": DemoRun(tmp, plain_text, summary("year-end"), {}, {}),
    }
    shutil.rmtree(tmp, ignore_errors=True)


def test_demo_runs_the_whole_money_path(demo_runs: dict[str, DemoRun]) -> None:
    run = demo_runs["year-end"]
    text = run.output
    for step in (
        "1. The sample network",
        "2. Roaming partner",
        "3. Chargers charging",
        "4. Priced CDRs",
        "5. Delivered",
        "6. Settlement",
        "7. Billing",
        "demo complete",
    ):
        assert step in text, f"missing {step!r} in:\n{text}"
    sessions = re.search(r"(\d+) sessions completed", text)
    assert sessions and int(sessions.group(1)) == 9
    assert f"Amsterdam time at {ACCELERATION}x" in " ".join(text.split()), (
        "the demo says how fast it simulated"
    )
    assert "registered through the OCPI 2.2.1 handshake" in text
    cdrs = re.search(r"eMSP DE\*EMS received (\d+) of (\d+) CDR", text)
    assert cdrs and cdrs.group(1) == cdrs.group(2) != "0", "every roaming CDR reaches the eMSP"
    assert "the hub registered with eMSP FR*MOB, which speaks only OCPI 2.1.1" in " ".join(text.split())
    old = re.search(
        r"eMSP FR\*MOB received (\d+) of (\d+) CDR\(s\) in OCPI 2\.1\.1 form \((\d+) with the same", text
    )
    assert old and old.group(1) == old.group(2) == old.group(3) != "0", (
        "the 2.1.1 eMSP gets every CDR, same money"
    )
    mails = re.search(r"(\d+) receipt email\(s\) for (\d+) fleet session", text)
    assert mails and mails.group(1) == mails.group(2), "every fleet session gets its receipt"
    # every session priced and settled, and the CDR BE*ION posted
    assert f"{int(sessions.group(1)) + 1} CDRs" in text and "0 rejected" in text
    periods = re.findall(r"^period (\d{4}-\d{2}):", text, flags=re.M)
    assert periods == ["2026-11"], "the demo's sessions lie in one month, whatever the day it runs"
    work = Path(re.search(r"data in (\S+)", text)[1])
    reminders = re.search(r"(\d+) reminder e-mail\(s\)", text)
    assert reminders, "billing's dunning sends reminders"
    app_driver = "her receipt e-mail is the invoice" in " ".join(text.split())
    assert app_driver, "the app driver's receipt is her invoice"
    assert len(list((work / "mail").glob("*.eml"))) == int(mails.group(1)) + int(reminders[1]) + 1
    assert list((work / "settlement").glob("*/lines.csv"))


def test_demo_prints_the_same_figures_at_a_month_end_and_a_year_end(demo_runs: dict[str, DemoRun]) -> None:
    month_end, year_end = demo_runs["month-end"], demo_runs["year-end"]
    assert month_end.summary and year_end.summary, month_end.output
    assert month_end.summary == year_end.summary
    got = [
        (c["location"], c["token"], c["start"][:16], c["kwh"], c["currency"], c["total_incl_vat"])
        for c in year_end.summary["cdrs"]
    ]
    assert [(*g[:3], format_kwh(g[3]), *g[4:]) for g in got] == EXPECTED_CDRS
    for run in (month_end, year_end):
        assert EXPECTED_HEADLINE in run.output.splitlines(), run.output
    # 7 receipts: the fleet's 6 sessions at the hub's chargers, and its card's session at BE*ION (received CDR)
    assert year_end.summary["receipts"] == 7 and year_end.summary["emsp_cdrs_received"] == 1
    assert year_end.summary["emsp_211_cdrs_received"] == year_end.summary["emsp_211_same_money"] == 2
    # billing: November's fleet invoice (lines equal to the CDRs to the cent), collected through localstripe
    # with a declined card, dunned to a block the gateway enforces at a real Authorize, lifted by the payment
    assert year_end.summary["invoices"] == {
        "invoice": "INV-2026-000001",
        "period": "2026-11",
        "to_the_cent": True,
        # 46.62 (36.62 at NL*AMP + BE*ION's 10.00) + VAT 9.79 per rate (BR-CO-17); the CDRs' own incl.-VAT: 56.43
        "payable": "56.41",
        "first_collection": "failed",
        "dunning": [
            "retry_payment failed",
            "reminder",
            "retry_payment failed",
            "reminder",
            "lower_limit",
            "block_tokens",
        ],
        "reminders": 2,
        "authorize": {"before": "Accepted", "blocked": "Blocked", "after_payment": "Accepted"},
        # the external CPO BE*ION, whose eMSP the hub is for NL*EVH: the hold's push and its own authorization
        "external_cpo": {
            "blocked": {"pushed_valid": False, "authorize": "BLOCKED"},
            "after_payment": {"pushed_valid": True, "authorize": "ALLOWED"},
        },
        "payments": ["failed", "failed", "failed", "succeeded"],
        # November closed: its statements as B2B documents (net = the statements above), one per counterparty
        "between_parties": {
            "same_run": True,
            "issued": [
                "hub_fee:NL*HUB->GB*LDN:GBP:2.28",  # the hub's second issuer, in GBP
                "hub_fee:NL*HUB->NL*AMP:EUR:3.00",
                "roaming:GB*LDN->FR*MOB:GBP:9.21",
                "roaming:GB*LDN->NL*EVH:GBP:38.73",
                "roaming:NL*AMP->DE*EMS:EUR:9.37",
                "roaming:NL*AMP->FR*MOB:EUR:6.56",
                "roaming:NL*AMP->NL*EVH:EUR:36.62",
                "site_host:NL*SIT->NL*AMP:EUR:4.96",  # self-billed by the CPO
            ],
            # BE*ION is an external CPO: it invoices NL*EVH itself, the hub issues no document in its name
            "not_issued": ["roaming:BE*ION->NL*EVH:EUR"],
        },
        # an app driver without a contract: a per-session invoice at the CDR's price, mailed as the receipt
        "app_driver": {"invoice": "INV-2026-000002", "cdr_price": True, "pdf_attached": True},
    }
    # FR*MOB refused its first CDR pushes (a simulated deploy): retried, none lost, healthy again
    assert year_end.summary["emsp_211_refused_then_retried"] == 2 and year_end.summary["emsp_211_healthy"]
    settled = {
        (p["party"], p["currency"]): (p["net"], p["vat"], p["gross"])
        for p in year_end.summary["settlement"]["2026-11"]
    }
    assert settled == EXPECTED_SETTLEMENT


def test_the_external_cpos_cdr_is_received_stored_once_and_billed_at_its_price(
    demo_runs: dict[str, DemoRun],
) -> None:
    """Issue 14, item 4: the simulated external CPO BE*ION posts the CDR of Acme's card 04A1B2C3D4 at its charger
    to the hub (its eMSP for NL*EVH) over OCPI 2.2.1: stored (201), posted again and stored once (200), read back
    at the Location answered, pushed to no partner, on the fleet's November invoice at exactly the CPO's price
    (and settled as NL*EVH's debt to BE*ION: EXPECTED_SETTLEMENT)."""
    for run in demo_runs.values():
        assert run.summary["received_cdr"] == {
            "id": "ION-CDR-0001",
            "token": "04A1B2C3D4",
            "answers": [201, 200],
            "stored": 1,
            "read_back": True,
            "total_excl_vat": "10.00",  # 20 kWh at 0.45 + 1 h at 1.00, its own tariff
            "total_incl_vat": "12.10",
            "same_as_posted": True,
            "pushed": 0,
            "on_invoice": {"invoice": "INV-2026-000001", "lines": 2, "net": "10.00", "cpo_price": True},
        }
        text = " ".join(run.output.split())
        assert "posted CDR ION-CDR-0001 of card 04A1B2C3D4" in text and "HTTP 201" in text, run.output
        assert "posted again: HTTP 200, 1 row" in text
        assert "CDR ION-CDR-0001 received from CPO BE*ION: pushed to 0 partner(s)" in text
        assert "10.00 EUR excl. VAT — the CPO's price to the cent: yes" in text


def test_keep_running_prints_copyable_secrets_and_opens_the_demo_month(demo_runs: dict[str, DemoRun]) -> None:
    run = demo_runs["month-end"]
    lines = run.keep_running
    for label in ("fleet portal", "portal login", "portal password", "API key", "partner token"):
        assert lines.get(label), f"no {label!r} line in:\n{run.output}"
        assert " " not in lines[label].split("  ")[0], f"{label} is not alone on its line: {lines[label]!r}"
    assert "│" not in run.output.split("The hub keeps running", 1)[1], "secrets are not boxed in a panel"
    assert lines["fleet portal"].endswith("/portal/?month=2026-11")
    assert run.portal == {
        "default_sessions": "7",  # the fleet's 6 at the hub's chargers and its card's at BE*ION (received CDR)
        "default_month": "November 2026",
        "printed_url_status": "200",
        "printed_url_same_page": "True",
        "api_status": "200",
    }


def test_the_demo_names_a_command_that_runs(demo_runs: dict[str, DemoRun]) -> None:
    run = demo_runs["year-end"]
    hint = re.search(r"^  (\S+) demo --keep-running$", run.output, flags=re.M)
    assert hint, run.output
    command = hint[1]
    # "evhub" only if that is on PATH; otherwise a path from the folder the demo was started in
    found = shutil.which(command) if command == "evhub" else run.cwd / command
    assert found and Path(found).resolve() == Path(EVHUB).resolve(), command


def test_the_signing_chargers_sessions_are_verified_and_no_session_is_held(
    demo_runs: dict[str, DemoRun],
) -> None:
    """Signed meter data and held sessions are in the demo: AMS-CP-2 (EVSE AMS-02-1) has a signing meter whose
    key pair is made at the demo's start and whose public key is provisioned, so each of its sessions' signed
    Begin/End is "verified" (real ECDSA over real OCMF, checked by the hub); the other chargers send none; and
    the demo says how many sessions are held for review: none in a normal run."""
    for run in demo_runs.values():
        outcomes = [(c["evse"], c["signed_meter_data"]) for c in run.summary["cdrs"]]
        signing = [outcome for evse, outcome in outcomes if evse == "AMS-02-1"]
        assert signing == ["verified"] * 3, outcomes
        assert {outcome for evse, outcome in outcomes if evse != "AMS-02-1"} == {"none"}, outcomes
        assert run.summary["held_sessions"] == 0
        lines = run.output.splitlines()
        assert "0 sessions held for review" in lines, run.output
        assert any(line.startswith("signed meter data (AMS-CP-2's meter") and ": 3 verified;" in line
                   for line in lines), run.output  # fmt: skip


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "inf", "nan"])
def test_a_demo_speed_that_is_not_a_positive_number_is_refused_naming_the_variable(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (test speed): EVHUB_DEMO_ACCELERATION is read before the demo starts anything; unset it is the
    demo's own 1500x, a positive number is taken, anything else is one error naming the variable."""
    from evhub.demo import ACCELERATION, demo_acceleration
    from kernel.settings import SettingsError

    monkeypatch.delenv("EVHUB_DEMO_ACCELERATION", raising=False)
    assert demo_acceleration() == ACCELERATION == 1500
    monkeypatch.setenv("EVHUB_DEMO_ACCELERATION", "6000")
    assert demo_acceleration() == 6000
    monkeypatch.setenv("EVHUB_DEMO_ACCELERATION", raw)
    with pytest.raises(SettingsError, match="EVHUB_DEMO_ACCELERATION"):
        demo_acceleration()
