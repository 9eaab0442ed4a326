"""Field helpers shared by the domain models: tolerant upper-casing and closed value sets."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any


def upper(value: Any) -> Any:
    """Accept re-cased enum strings from peers (``rfid`` -> ``RFID``)."""
    return value.upper() if isinstance(value, str) else value


def one_of(allowed: Collection[str]) -> Callable[[str], str]:
    """A validator admitting only ``allowed`` values, naming them in the error."""
    names = sorted(allowed)

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {names}")
        return value

    return check
