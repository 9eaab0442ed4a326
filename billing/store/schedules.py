"""An issuer's dunning schedule as stored: ``billing_issuers.dunning`` JSON <-> :class:`DunningSchedule`.

The JSON is ``{"rules": [{"name", "days_after_due", "action", "times"?, "every_days"?, "fee"?, "limit"?,
"vat_rate"?, "currency"?}, ...]}``; ``fee`` and ``limit`` are amounts (strings) in the invoice's currency unless the
rule names a ``currency``. ``None`` in the column is :data:`DEFAULT_SCHEDULE`: retry the payment on day 1 after the
due date and every 3 days, 3 times; reminders on day 3 and day 10; the monthly spending limit lowered to 50 (the
invoice's currency) on day 14; the account's tokens blocked on day 21; no fee (a fee only where the issuer sets
one). Every schedule is validated by :mod:`billing.core.dunning` before it is stored (:class:`DunningError`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.dunning import DunningAction, DunningError, DunningRule, DunningSchedule
from billing.store.issuers import get_issuer
from kernel.models import BillingIssuer
from kernel.money import Money, MoneyError, parse_amount, round_amount

DEFAULT_SCHEDULE: dict[str, Any] = {
    "rules": [
        {"name": "retry", "days_after_due": 1, "action": "retry_payment", "times": 3, "every_days": 3},
        {"name": "reminder-1", "days_after_due": 3, "action": "reminder"},
        {"name": "reminder-2", "days_after_due": 10, "action": "reminder"},
        {"name": "lower-limit", "days_after_due": 14, "action": "lower_limit", "limit": "50.00"},
        {"name": "block", "days_after_due": 21, "action": "block_tokens"},
    ]
}
_KEYS = {"name", "days_after_due", "action", "times", "every_days", "fee", "limit", "vat_rate", "currency"}


def _int(rule: dict[str, Any], key: str, default: int) -> int:
    value = rule.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DunningError(f"rule {rule.get('name')!r}: {key} must be a whole number")
    return value


def _money(rule: dict[str, Any], key: str, currency: str) -> Money | None:
    value = rule.get(key)
    if value is None:
        return None
    code = rule.get("currency") or currency
    try:
        return Money(round_amount(parse_amount(str(value), str(code)), str(code)), str(code))
    except (MoneyError, ValueError) as exc:
        raise DunningError(f"rule {rule.get('name')!r}: {key} {value!r}: {exc}") from exc


def _rule(data: Any, currency: str) -> DunningRule:
    if not isinstance(data, dict):
        raise DunningError("each dunning rule is an object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise DunningError(f"rule {data.get('name')!r}: unknown field(s) {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str):
        raise DunningError("a dunning rule has a name")
    try:
        action = DunningAction(str(data.get("action")))
    except ValueError:
        names = ", ".join(a.value for a in DunningAction if a is not DunningAction.RELEASE)
        raise DunningError(f"rule {name!r}: action must be one of {names}") from None
    if "vat_rate" in data:
        try:
            Decimal(str(data["vat_rate"]))
        except ArithmeticError:
            raise DunningError(f"rule {name!r}: vat_rate {data['vat_rate']!r} is not a number") from None
    return DunningRule(
        name=name,
        days_after_due=_int(data, "days_after_due", -1),
        action=action,
        times=_int(data, "times", 1),
        every_days=_int(data, "every_days", 0),
        fee=_money(data, "fee", currency),
        limit=_money(data, "limit", currency),
    )


def schedule_from_json(issuer: str, data: Any, currency: str) -> DunningSchedule:
    """The schedule ``data`` describes (``None``: the default), amounts in ``currency`` unless a rule names
    its own; :class:`DunningError` with one clear message when it is not a valid schedule."""
    if data is None:
        data = DEFAULT_SCHEDULE
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise DunningError('a dunning schedule is an object {"rules": [...]}')
    return DunningSchedule(issuer, tuple(_rule(rule, currency) for rule in data["rules"]))


def fee_vat_rate(data: Any, rule: str) -> Decimal | None:
    """The VAT rate (percent) a fee rule names, None (outside VAT) when it names none."""
    for item in (data or DEFAULT_SCHEDULE)["rules"]:
        if item.get("name") == rule and item.get("vat_rate") is not None:
            return Decimal(str(item["vat_rate"]))
    return None


def schedule_of(row: BillingIssuer, currency: str | None = None) -> DunningSchedule:
    """The issuer's schedule, its amounts in ``currency`` (an invoice's; the issuer's by default)."""
    return schedule_from_json(row.key, row.dunning, currency or row.currency)


def stored_json(row: BillingIssuer) -> dict[str, Any]:
    """What ``--show`` prints: the issuer's schedule, or the default one (marked)."""
    if row.dunning is None:
        return {"issuer": row.key, "default": True, **DEFAULT_SCHEDULE}
    return {"issuer": row.key, "default": False, **row.dunning}


async def set_schedule(db_session: AsyncSession, key: str, data: Any) -> BillingIssuer:
    """Validate ``data`` and store it as issuer ``key``'s schedule (``None``: back to the default)."""
    row = await get_issuer(db_session, key)
    if data is not None:
        schedule_from_json(key, data, row.currency)
        data = {"rules": data["rules"]}
    row.dunning = data
    await db_session.flush()
    return row
