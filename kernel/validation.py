"""One line that says what is wrong with input a pydantic model refused: for HTTP 4xx messages and CLI errors."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError) -> str:
    """``field.path: message; other.field: message`` for every error of ``exc``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(object)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
