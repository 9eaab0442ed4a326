"""``evhub simulate chargers|grid`` — simulated charge points and a grid-load feed against a running hub.

Both check their target before they start and end with one line and a non-zero exit when it cannot be used:
``0 of 5 chargers connected to ws://...: connection refused``, ``cannot reach the hub at http://...: ...``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

import typer

from evhub.cli._common import console, fail, print_json

simulate_app = typer.Typer(help="Simulators for trying a hub out and for load tests.", no_args_is_help=True)
PROBE_TIMEOUT_S = 5.0


def _target(url: str, option: str, schemes: tuple[str, ...]) -> tuple[str, int]:
    """(host, port) of ``url``, or one line saying what a usable URL looks like."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        fail(f"{option} {url!r}: the port is not a number between 0 and 65535")
    if parts.scheme not in schemes or not parts.hostname:
        fail(f"{option} {url!r}: expected a {' or '.join(s + '://' for s in schemes)} URL with a host")
    return parts.hostname, port or (443 if parts.scheme.endswith("s") else 80)


def _unreachable(host: str, port: int) -> str | None:
    """Why nothing answers on ``host:port`` (a plain TCP connect), or None when something does."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()


class _LastError(logging.Handler):
    """Keeps the simulators' last error message (e.g. ``SIM00001 refused: HTTP 401``) instead of printing
    one line per charger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()


@contextmanager
def _quiet_simulator_errors() -> Iterator[_LastError]:
    logger = logging.getLogger("simulators.chargepoints")
    handler = _LastError()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@simulate_app.command("chargers")
def chargers(
    count: Annotated[int, typer.Option(help="How many chargers")] = 10,
    url: Annotated[
        str, typer.Option(help="Central system URL without the charger id")
    ] = "ws://127.0.0.1:9000/ocpp",
    version: Annotated[str, typer.Option(help="1.6, 2.0.1 or mixed")] = "1.6",
    password: Annotated[
        str, typer.Option(help="Basic-auth password of every simulated charger", envvar="EVHUB_SIM_PASSWORD")
    ] = "sim-password",
    prefix: Annotated[str, typer.Option(help="Identities are PREFIX00001, PREFIX00002, ...")] = "SIM",
    token: Annotated[list[str] | None, typer.Option(help="RFID uid the drivers use; repeat")] = None,
    acceleration: Annotated[float, typer.Option(help="Simulated seconds per real second")] = 60.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many real seconds")] = None,
    sessions: Annotated[int | None, typer.Option(help="Stop each charger after this many sessions")] = None,
) -> None:
    """Run N simulated chargers (the identities must be registered with `evhub chargers add`).

    Exits non-zero when no charger could connect (nothing listening, or the hub refused them all)."""
    from simulators.chargepoints import run

    if version not in ("1.6", "2.0.1", "mixed"):
        fail(f"--version {version!r}: expected 1.6, 2.0.1 or mixed")
    if count < 1:
        fail("--count must be at least 1")
    if not acceleration > 0:
        fail(f"--acceleration {acceleration}: must be more than 0")
    if duration is not None and not duration > 0:
        fail(f"--duration {duration}: must be more than 0 seconds")
    if sessions is not None and sessions < 1:
        fail(f"--sessions {sessions}: must be at least 1")
    host, port = _target(url, "--url", ("ws", "wss"))
    reason = _unreachable(host, port)
    if reason:
        fail(f"0 of {count} chargers connected to {url}: {reason}")
    with _quiet_simulator_errors() as last_error:
        try:
            stats = run(
                count,
                url,
                version=version,
                password=password,
                tokens=token or ["AABBCC01"],
                prefix=prefix,
                acceleration=acceleration,
                duration=duration,
                sessions=sessions,
            )
        except KeyboardInterrupt:
            return
    if not stats.get("connects"):
        why = last_error.message or f"{stats.get('errors', 0)} failed attempt(s)"
        fail(
            f"0 of {count} chargers connected to {url}: {why} (are {prefix}00001... registered with "
            "`evhub chargers add` and this --password?)"
        )
    print_json(stats)


@simulate_app.command("grid")
def grid(
    zone: Annotated[str, typer.Argument(help="Grid zone")],
    url: Annotated[str, typer.Option(help="The hub's HTTP base URL")] = "http://127.0.0.1:8000",
    samples: Annotated[int, typer.Option(help="How many 15-minute samples (96 = one day)")] = 96,
    interval: Annotated[float, typer.Option(help="Real seconds between samples")] = 1.0,
    api_key: Annotated[
        str | None, typer.Option(help="A hub operator API key", envvar="EVHUB_API_KEY")
    ] = None,
) -> None:
    """Feed a simulated daily load curve (from now, every 15 simulated minutes) to /api/grid/{zone}/load.

    Stops with one line and a non-zero exit when the hub cannot be reached or refuses a sample."""
    from kernel.timeutil import utcnow
    from simulators.grid import GridFeed, GridFeedError, load_curve

    if samples < 1:
        fail(f"--samples {samples}: must be at least 1")
    if not interval >= 0:
        fail(f"--interval {interval}: must not be negative")
    _target(url, "--url", ("http", "https"))

    async def go() -> None:
        feed = GridFeed(url, zone, api_key)
        for at, load in load_curve(utcnow(), timedelta(minutes=15), samples):
            published = await feed.post(at, load)
            note = ", ".join(f"{p['tariff_id']} v{p['version']}" for p in published)
            console.print(f"{at:%H:%M} load {load} %" + (f" -> published {note}" if note else ""))
            await asyncio.sleep(interval)

    try:
        asyncio.run(go())
    except GridFeedError as exc:
        fail(str(exc))
