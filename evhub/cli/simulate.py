"""``evhub simulate chargers|grid`` — simulated charge points and a grid-load feed against a running hub."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

import typer

from evhub.cli._common import console, fail, print_json

simulate_app = typer.Typer(help="Simulators for trying a hub out and for load tests.", no_args_is_help=True)


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
    """Run N simulated chargers (the identities must be registered with `evhub chargers add`)."""
    from simulators.chargepoints import run

    if version not in ("1.6", "2.0.1", "mixed"):
        fail(f"--version {version!r}: expected 1.6, 2.0.1 or mixed")
    if count < 1:
        fail("--count must be at least 1")
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
    """Feed a simulated daily load curve (from now, every 15 simulated minutes) to /api/grid/{zone}/load."""
    from evhub.timeutil import utcnow
    from simulators.grid import GridFeed, load_curve

    async def go() -> None:
        feed = GridFeed(url, zone, api_key)
        for at, load in load_curve(utcnow(), timedelta(minutes=15), samples):
            published = await feed.post(at, load)
            note = ", ".join(f"{p['tariff_id']} v{p['version']}" for p in published)
            console.print(f"{at:%H:%M} load {load} %" + (f" -> published {note}" if note else ""))
            await asyncio.sleep(interval)

    asyncio.run(go())
