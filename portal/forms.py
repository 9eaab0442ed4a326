"""Form bodies (application/x-www-form-urlencoded) read with the standard library, and input parsing."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request

MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """The POSTed form as a dict (last value wins); refuses other content types and oversized bodies."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise HTTPException(415, "forms must be application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def parse_amount(text: str) -> Decimal | None:
    """A non-negative decimal amount typed by a person ('50', '50.00', '50,5'); None for empty."""
    raw = text.strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a valid amount: {text!r}")
    return value


def clean(text: str | None, max_len: int) -> str | None:
    value = (text or "").strip()
    return value[:max_len] if value else None
