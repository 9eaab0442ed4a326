"""Email over SMTP (stdlib ``smtplib`` in a worker thread) and a local SMTP sink for the demo and tests.

``EVHUB_SMTP_URL``: ``smtp://[user:pass@]host[:port][?starttls=1]`` (plain, or STARTTLS when asked) or
``smtps://[user:pass@]host[:port]`` (TLS from the first byte). TLS verifies the server certificate.

:func:`send_email` classifies failures for the outbox: a 5xx reply (refused address, rejected message) is
permanent and recorded; a 4xx reply, an unreachable server, a timeout or a dropped connection before the
message's data went out is transient and retried later. A timeout or a dropped connection *after* the DATA
command (the server may have taken the message and its answer was lost) is ``uncertain``: the outbox parks it
instead of sending it a second time (an e-mail cannot be taken back; see :func:`kernel.outbox.mark_sending`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kernel.ports import free_port
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)


class SmtpConfigError(ValueError):
    """An ``EVHUB_SMTP_URL`` that cannot be used."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: str = "none"  # none | starttls | tls
    timeout: float = 20.0

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig | None:
        """Parse ``EVHUB_SMTP_URL``; None when it is empty (email not configured)."""
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SmtpConfigError(
                f"EVHUB_SMTP_URL must be smtp://host[:port] or smtps://host[:port], got {url!r}"
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.scheme == "smtps":
            tls, default_port = "tls", 465
        elif query.get("starttls", "").lower() in ("1", "true", "yes"):
            tls, default_port = "starttls", 587
        else:
            tls, default_port = "none", 25
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            timeout=float(query.get("timeout", 20)),
        )


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    permanent: bool = False
    error: str | None = None
    refused: bool = False
    uncertain: bool = False  # no answer after the data went out: the server may have the message


def build_message(payload: dict[str, Any], mail_from: str) -> EmailMessage:
    """The MIME message of an email payload: ``to``, ``subject``, ``text``, ``html``, ``message_id``, and
    ``attachments`` ([{filename, content_type, content}] with text content, or ``content_base64`` for a binary
    one such as an invoice's PDF)."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = payload["to"]
    msg["Subject"] = payload["subject"]
    msg["Date"] = format_datetime(utcnow(), usegmt=True)
    if payload.get("message_id"):
        msg["Message-ID"] = payload["message_id"]
    msg.set_content(payload["text"])
    if payload.get("html"):
        msg.add_alternative(payload["html"], subtype="html")
    for att in payload.get("attachments") or []:
        maintype, _, subtype = att.get("content_type", "text/plain").partition("/")
        if "content_base64" in att:  # binary (an invoice's PDF): base64 in the outbox's JSON payload
            msg.add_attachment(
                base64.b64decode(att["content_base64"]),
                maintype=maintype,
                subtype=subtype,
                filename=att["filename"],
            )
        elif maintype == "text":
            msg.add_attachment(att["content"], subtype=subtype or "plain", filename=att["filename"])
        else:
            msg.add_attachment(
                att["content"].encode(), maintype=maintype, subtype=subtype, filename=att["filename"]
            )
    return msg


class _DataWatch:
    """Remembers whether the DATA command was sent (from then on, a lost answer leaves the outcome unknown)."""

    in_data = False
    accepted = False  # the server answered 250 to the data: whatever fails afterwards (QUIT), it was sent

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.in_data = True
        reply: tuple[int, bytes] = super().data(msg)  # type: ignore[misc]
        self.accepted = reply[0] == 250
        return reply


class _Smtp(_DataWatch, smtplib.SMTP):
    pass


class _SmtpSsl(_DataWatch, smtplib.SMTP_SSL):
    pass


def _send_sync(config: SmtpConfig, msg: EmailMessage) -> SendOutcome:
    holder: list[_Smtp | _SmtpSsl] = []
    outcome = _attempt_sync(config, msg, holder)
    if not outcome.ok and holder and holder[0].accepted:  # a failure after the 250 (QUIT): it was sent
        return SendOutcome(ok=True)
    return outcome


def _attempt_sync(config: SmtpConfig, msg: EmailMessage, holder: list[_Smtp | _SmtpSsl]) -> SendOutcome:
    context = ssl.create_default_context()
    client: _Smtp | _SmtpSsl | None = None
    try:
        if config.tls == "tls":
            client = _SmtpSsl(config.host, config.port, timeout=config.timeout, context=context)
        else:
            client = _Smtp(config.host, config.port, timeout=config.timeout)
        holder.append(client)
        with client:
            if config.tls == "starttls":
                client.starttls(context=context)
            if config.username:
                client.login(config.username, config.password or "")
            client.send_message(msg)
        return SendOutcome(ok=True)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{rcpt}: {code} {text!r}" for rcpt, (code, text) in exc.recipients.items())
        permanent = all(code >= 500 for code in codes)
        return SendOutcome(
            ok=False, permanent=permanent, refused=permanent, error=f"recipient refused: {detail}"
        )
    except smtplib.SMTPAuthenticationError as exc:  # our configuration, not the message: retry later
        return SendOutcome(ok=False, error=f"SMTP authentication failed: {exc.smtp_code}")
    except smtplib.SMTPResponseException as exc:  # the server answered: it has not taken the message
        permanent = exc.smtp_code >= 500
        return SendOutcome(ok=False, permanent=permanent, error=f"SMTP {exc.smtp_code}: {exc.smtp_error!r}")
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        if client is not None and client.in_data:  # the server may have the message: never send it again
            return SendOutcome(
                ok=False, uncertain=True, error=f"no answer after DATA: {type(exc).__name__}: {exc}"
            )
        return SendOutcome(ok=False, error=f"{type(exc).__name__}: {exc}")


async def send_email(config: SmtpConfig, payload: dict[str, Any], mail_from: str) -> SendOutcome:
    """Send one email payload; never raises for SMTP or network problems (see the module doc)."""
    msg = build_message(payload, mail_from)
    return await asyncio.to_thread(_send_sync, config, msg)


# ---- a local SMTP sink (demo, tests) ----------------------------------------------------------------------


class _SaveHandler:
    def __init__(self, folder: Path, refuse: Callable[[str], bool] | None) -> None:
        self.folder = folder
        self.refuse = refuse
        self.count = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.refuse is not None and self.refuse(address):
            return "550 5.1.1 Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{self.count:05d}.eml"
        tmp = self.folder / (name + ".part")
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.folder / name)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on loopback that saves every message it accepts as an ``.eml`` file."""

    def __init__(self, folder: Path, host: str, port: int, refuse: Callable[[str], bool] | None) -> None:
        from aiosmtpd.controller import Controller

        self.folder = folder
        self.host = host
        self.port = port
        self.handler = _SaveHandler(folder, refuse)
        self._controller = Controller(self.handler, hostname=host, port=port)

    @property
    def url(self) -> str:
        """The ``EVHUB_SMTP_URL`` that sends to this sink."""
        return f"smtp://{self.host}:{self.port}"

    def messages(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml"))

    async def start(self) -> None:
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._controller.stop)


async def start_smtp_sink(
    folder: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    refuse: Callable[[str], bool] | None = None,
) -> SmtpSink:
    """Start a local SMTP sink saving messages to ``folder`` (created); ``port=0`` picks a free port.
    ``refuse(address)`` may reject recipients with a 550 (to show bounces). Stop it with ``await sink.stop()``."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    sink = SmtpSink(path, host, port or free_port(host), refuse)
    await sink.start()
    log.info("SMTP sink listening on %s, saving to %s", sink.url, path)
    return sink
