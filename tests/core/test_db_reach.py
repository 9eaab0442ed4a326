"""The reachability check before a command: a server that accepts the connection and never answers."""

from __future__ import annotations

import socket

import pytest

from kernel.db import reach
from kernel.db.engine import Database


async def test_a_server_that_never_answers_is_one_line_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as silent:  # listens, so the kernel completes the handshake, but nobody ever speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        monkeypatch.setattr(reach, "CONNECT_TIMEOUT", 0.5)
        db = Database(f"postgresql+asyncpg://evhub:secret@127.0.0.1:{port}/evhub")
        try:
            with pytest.raises(reach.DatabaseUnreachableError) as caught:
                await reach.check_reachable(db)
        finally:
            await db.dispose()
    message = str(caught.value)
    assert f"EVHUB_DATABASE_URL (PostgreSQL at 127.0.0.1:{port}, database evhub" in message
    assert "no answer within" in message and "secret" not in message
