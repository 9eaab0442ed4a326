"""A ``cdrs`` row as the :class:`billing.core.PricedCdr` billing needs: the explanation lines as components.

A priced CDR's ``explanation`` holds the pricing engine's rounded lines (``tariffs.core.render.explanation``):
a ``component`` line becomes a component of its dimension, a ``MIN_PRICE`` / ``MAX_PRICE`` line the
adjustment. A credit CDR's explanation only names the original, so its components are the original's, negated
(the credit CDR negates the amounts and keeps the quantities, ``tariffs.rating.credit_for``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing.core.documents import DocumentError
from billing.core.lines import CdrComponent, Dimension, PricedCdr
from kernel.models.cdrs import Cdr


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _component(line: dict[str, Any], sign: int) -> CdrComponent:
    adjustment = line.get("kind") != "component"
    try:
        dimension = Dimension.ADJUSTMENT if adjustment else Dimension(line["dimension"])
    except (KeyError, ValueError):
        raise DocumentError(f"an explanation line of dimension {line.get('dimension')!r}") from None
    return CdrComponent(
        dimension,
        Decimal(str(line.get("quantity") or 0)),
        sign * Decimal(str(line["amount_excl_vat"])),
        _dec(line.get("vat")),
        None if adjustment else _dec(line.get("unit_price")),
    )


def priced_cdr(row: Cdr, original: Cdr | None = None) -> PricedCdr:
    """The PricedCdr of ``row``; a credit CDR needs its ``original`` (the CDR it credits)."""
    if row.is_credit and (original is None or original.id != row.credit_of):
        raise DocumentError(f"credit CDR {row.cdr_uid} needs the CDR it credits")
    source = original if row.is_credit and original is not None else row
    lines = (source.explanation or {}).get("lines")
    if not lines:
        raise DocumentError(f"CDR {row.cdr_uid} has no priced lines to invoice")
    sign = -1 if row.is_credit else 1
    data = row.data or {}
    return PricedCdr(
        cdr_id=row.cdr_uid,
        session_ref=data.get("session_id"),
        currency=row.currency,
        start=row.start_date_time,
        end=row.end_date_time,
        total_excl=row.total_cost_excl_vat,
        total_incl=row.total_cost_incl_vat,
        components=tuple(_component(ln, sign) for ln in lines),
        is_credit=row.is_credit,
        credit_of=original.cdr_uid if row.is_credit and original is not None else None,
        signed_data_ref=row.cdr_uid if data.get("signed_data") else None,
    )
