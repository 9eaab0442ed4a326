"""The one injectable clock: tests are pinned, a pinned clock runs on, EVHUB_CLOCK_START pins a process."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from kernel.clock import CLOCK, Clock, pinned
from kernel.settings import SettingsError, load_settings
from kernel.timeutil import utcnow
from tests.conftest import TEST_CLOCK_START

MONTH_END = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)


def _wait_until_after(clock: Clock, instant: datetime) -> datetime:
    while (now := clock.now()) <= instant:
        time.sleep(0.001)
    return now


def test_every_test_runs_on_the_pinned_calendar(clock_start: datetime) -> None:
    assert clock_start == TEST_CLOCK_START
    assert TEST_CLOCK_START <= utcnow() < TEST_CLOCK_START + timedelta(hours=1)


@pytest.mark.clock("2026-11-30T23:59:00Z")
def test_a_marker_moves_one_test(clock_start: datetime) -> None:
    assert clock_start == MONTH_END
    assert utcnow().date() in (MONTH_END.date(), MONTH_END.date() + timedelta(days=1))


def test_a_pinned_clock_runs_on_at_the_real_rate() -> None:
    clock = Clock()
    clock.pin(MONTH_END)
    first = clock.now()
    assert first >= MONTH_END and first.tzinfo is UTC
    later = _wait_until_after(clock, first)  # time passes: timeouts and leases still expire
    assert later > first
    clock.unpin()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)


def test_pinned_restores_what_was_before() -> None:
    outer = utcnow()
    with pinned(MONTH_END):
        assert utcnow().year == 2026 and utcnow() >= MONTH_END
        with pinned(datetime(2027, 1, 1, tzinfo=UTC)):
            assert utcnow().year == 2027
        assert utcnow() < datetime(2027, 1, 1, tzinfo=UTC)
    assert TEST_CLOCK_START <= outer <= utcnow() < TEST_CLOCK_START + timedelta(hours=1)


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        Clock().pin(datetime(2026, 11, 30, 23, 59))


def test_evhub_clock_start_pins_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVHUB_CLOCK_START", "2026-12-31T23:59:00+00:00")
    with pinned(TEST_CLOCK_START):  # restored after the test
        settings = load_settings(_env_file=None)
        assert settings.clock_start == datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
        assert CLOCK.pinned_start == settings.clock_start
        first = utcnow()
        load_settings(_env_file=None)  # loading the same setting again does not set the clock back
        assert utcnow() >= first


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-30T23:59", "EVHUB_CLOCK_START='2026-11-30T23:59': needs a UTC offset"),
        ("yesterday", "EVHUB_CLOCK_START='yesterday': is not an ISO 8601 timestamp"),
    ],
)
def test_a_bad_clock_start_names_the_variable(value: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(clock_start=value, _env_file=None)
    assert message in str(err.value)


def test_a_subprocess_is_pinned_by_the_environment() -> None:
    """What ``evhub serve`` and ``evhub demo`` do at start: load the settings, then read the clock."""
    code = (
        "from kernel.settings import load_settings; from kernel.timeutil import utcnow; "
        "load_settings(_env_file=None); print(utcnow().isoformat())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"EVHUB_CLOCK_START": "2026-11-30T23:59:00Z", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert MONTH_END <= datetime.fromisoformat(out.strip()) < MONTH_END + timedelta(hours=1)
