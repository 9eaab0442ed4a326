"""``python -m faults [--short] [--chargers N] [--kills K] [--no-hostile] [--json FILE]``: run the fault suite
(docs/faults.md), then (long version) schemathesis and the OCPP frame fuzzer at length (:mod:`faults.hostile`).

Exits 1 when anything was lost or duplicated, or partner B's p95 moved beyond the plan's factor."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from faults.hostile import run_hostile
from faults.run import Plan, long_plan, run, short_plan


async def _run_stoppable(plan: Plan, workdir: Path | None) -> dict[str, Any]:
    """The run, cancelled on SIGTERM (`timeout` in the Makefile) so its cleanup stops the hub and removes the
    cluster. A handler raising KeyboardInterrupt did not: inside the event loop it could land in a task and be
    swallowed, and the run went on (seen when stopping a long run)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(plan, workdir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__)
    parser.add_argument(
        "--short", action="store_true", help="seconds, few chargers (the test suite's version)"
    )
    parser.add_argument("--chargers", type=int, default=None, help="simulated chargers (long default 200)")
    parser.add_argument("--kills", type=int, default=None, help="kill -9 rounds (long default 3)")
    parser.add_argument(
        "--strict-ocpi", action="store_true", help="count a CDR a partner accepted twice as duplicated"
    )
    parser.add_argument(
        "--no-hostile", action="store_true", help="skip the long schemathesis and frame-fuzzer run"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the cluster, logs here (default: temp)"
    )
    args = parser.parse_args(argv)
    plan = short_plan() if args.short else long_plan()
    if args.chargers is not None:
        plan.chargers = args.chargers
    if args.kills is not None:
        plan.kills = args.kills
    plan.strict_ocpi = args.strict_ocpi
    plan.hostile = plan.hostile and not args.no_hostile
    try:
        figures = asyncio.run(_run_stoppable(plan, args.workdir))
    except asyncio.CancelledError:
        print("stopped (SIGTERM): the hub stopped and the cluster removed", file=sys.stderr)
        return 2
    if plan.hostile:
        print(
            f"\nhostile input: schemathesis over /ocpi and /api ({plan.schema_examples} examples per operation and "
            f"mode) and the OCPP frame fuzzer ({plan.fuzz_examples} frames per version) ...",
            flush=True,
        )
        hostile = run_hostile(plan.schema_examples, plan.fuzz_examples, plan.hostile_timeout_s)
        print(hostile.summary)
        verdict = "0 server errors" if hostile.ok else "FAILED (a 5xx, a malformed answer or a traceback)"
        print(
            f"hostile input: {hostile.passed} passed, {hostile.failed} failed in {hostile.seconds:.0f} s: {verdict}"
        )
        figures["hostile"] = {**hostile.__dict__, "ok": hostile.ok}
        if not hostile.ok:
            figures["problems"].append(f"hostile input: {hostile.failed} failed (rc {hostile.returncode})")
    print("RESULT: " + ("OK" if not figures["problems"] else "FAILED: " + "; ".join(figures["problems"])))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
