"""Structured log lines carry the context (request id, charger id) of the task that logged them."""

import asyncio
import io
import json
import logging

from kernel.logs import bind, bind_permanently, configure


async def test_context_fields_on_every_line() -> None:
    stream = io.StringIO()
    configure("INFO", "json", stream=stream)
    log = logging.getLogger("evhub.test")

    async def charger_task(identity: str) -> None:
        bind_permanently(charger_id=identity)
        await asyncio.sleep(0)
        log.info("meter values stored", extra={"fields": {"count": 3}})

    with bind(request_id="req-1"):
        log.info("in a request")
    await asyncio.gather(charger_task("CP-1"), charger_task("CP-2"))
    log.info("outside")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["request_id"] == "req-1" and lines[0]["msg"] == "in a request"
    assert {line["charger_id"] for line in lines[1:3]} == {"CP-1", "CP-2"}
    assert all(line["count"] == 3 for line in lines[1:3])
    assert "charger_id" not in lines[3] and "request_id" not in lines[3]
    configure("INFO", "kv", stream=stream)
    log.info("a b", extra={"fields": {"path": "/api/x"}})
    assert 'msg="a b"' in stream.getvalue().splitlines()[-1] and "path=/api/x" in stream.getvalue()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_evhub", False)]:
        root.removeHandler(handler)
