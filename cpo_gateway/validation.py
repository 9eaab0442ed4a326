"""Payload validation against the OCPP JSON schemas, with the error code the specs give for each failure.

A payload the compiled predicate of :mod:`cpo_gateway.schemas` accepts is valid; everything else is decided by
the ocpp library's validator (built once per action and cached by the library), whose failure becomes an
:class:`~cpo_gateway.framing.OcppError` answered as a CALLERROR.
"""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import get_validator

from cpo_gateway.framing import OcppError
from cpo_gateway.schemas import fast_check


def schema_error(exc: SchemaError) -> OcppError:
    """Map a JSON-schema failure to the OCPP error code the specs give for it."""
    kind = exc.validator
    where = "/".join(str(p) for p in exc.absolute_path) or "payload"
    desc = f"{where}: {exc.message}"[:250]
    if kind == "type" or kind == "maxLength":
        return OcppError("TypeConstraintViolation", desc)
    if kind in ("required", "minItems", "maxItems"):
        return OcppError("OccurrenceConstraintViolation", desc)
    if kind in ("enum", "minimum", "maximum", "minLength", "pattern", "multipleOf"):
        return OcppError("PropertyConstraintViolation", desc)
    return OcppError("FormatViolation", desc)


def validate(version: str, message_type: int, action: str, payload: Any) -> None:
    """Return if ``payload`` is a valid ``action`` message of ``version``; raise :class:`OcppError` if not."""
    check = fast_check(version, message_type, action)
    if check is not None and check(payload):
        return
    try:
        validator = get_validator(message_type, action, version)
    except (OSError, ValueError) as exc:
        raise OcppError("NotImplemented", f"no schema for {action}") from exc
    try:
        validator.validate(payload)
    except SchemaError as exc:
        raise schema_error(exc) from None
    except TypeError as exc:  # e.g. multipleOf on a Decimal
        raise OcppError("FormatViolation", str(exc)[:250]) from None
