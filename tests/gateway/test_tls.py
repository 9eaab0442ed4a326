"""Security profiles 2 (Basic auth over TLS) and 3 (TLS client certificates), with certificates made by
openssl for the test."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import ChargePoint
from tests.gateway.conftest import Client, Seed, basic, gateway_settings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=evhub test CA", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "CP201"), ("other", "CP16")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)  # fmt: skip
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", *extra, cwd=d)  # fmt: skip
    return d


@pytest.fixture
async def tls_gateway(db: Database, seeded: Seed, database_url: str, pki: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(database_url, ocpp_tls_cert=str(pki / "server.pem"),
                                ocpp_tls_key=str(pki / "server.key"), ocpp_tls_ca=str(pki / "ca.pem"))  # fmt: skip
    async with db.session() as db_session:
        for cp in (await db_session.scalars(select(ChargePoint))).all():
            cp.security_profile = {"CP16": 2, "CP201": 3}.get(cp.identity, 1)
    gw = Gateway(settings, db, "node-tls")
    await gw.start("127.0.0.1", 0)
    try:
        yield gw
    finally:
        await gw.stop()


def _client_ctx(pki: Path, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.pem"), str(pki / f"{cert}.key"))
    return ctx


async def test_profile_2_and_3(tls_gateway: Gateway, pki: Path) -> None:
    base = f"wss://127.0.0.1:{tls_gateway.port}/ocpp"
    # profile 2: Basic auth over TLS
    ws = await connect(f"{base}/CP16", subprotocols=["ocpp1.6"], additional_headers=basic("CP16"),
                       ssl=_client_ctx(pki))  # fmt: skip
    c = Client(ws)
    assert "currentTime" in await c.ok("Heartbeat", {})
    await c.close()
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{base}/CP16", subprotocols=["ocpp1.6"], additional_headers=basic("CP16", "bad"),
                      ssl=_client_ctx(pki))  # fmt: skip
    assert info.value.response.status_code == 401
    # profile 3: the client certificate names the charger; no password needed
    ws = await connect(f"{base}/CP201", subprotocols=["ocpp2.0.1"], ssl=_client_ctx(pki, "client"))
    c = Client(ws)
    assert "currentTime" in await c.ok("Heartbeat", {})
    await c.close()
    for cert in (None, "other"):  # no certificate, or another charger's certificate
        with pytest.raises(InvalidStatus) as info:
            await connect(f"{base}/CP201", subprotocols=["ocpp2.0.1"], additional_headers=basic("CP201"),
                          ssl=_client_ctx(pki, cert))  # fmt: skip
        assert info.value.response.status_code == 403
