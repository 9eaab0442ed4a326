"""Payload validation against the OCPP JSON schemas, with the error code the specs give for each failure.

A payload the compiled predicate of :mod:`cpo_gateway.schemas` accepts is valid; everything else is decided by
the ocpp library's validator (built once per action and cached by the library), whose failure becomes an
:class:`~cpo_gateway.framing.OcppError` answered as a CALLERROR.

What the hub *sends* is held to more: :func:`validate_call` checks an outgoing CALL against the request schema
of the charger's version with the schemas' formats too (``date-time`` is RFC 3339, ``uri`` absolute), and an
invalid one raises :class:`InvalidCall` (naming the field) before anything is sent.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match
from ocpp.messages import get_validator

from cpo_gateway.framing import CALL, OcppError
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


# ------------------------------------------------------------------------------------------- outgoing CALLs
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` (the OCPP specs' dateTime): ``2026-12-01T10:00:00Z``, offset required."""
    if not isinstance(value, str):
        return True  # "type" decides
    if not _RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(
        re.sub(r"\.\d+", "", value.upper()).replace("Z", "+00:00")
    )  # month 13, Feb 30, hour 25: ValueError
    return True


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    """An absolute URI (RFC 3986: a scheme, then no whitespace)."""
    return not isinstance(value, str) or bool(_URI.fullmatch(value))


class InvalidCall(OcppError):
    """An outgoing CALL that is not valid against the request schema of the charger's OCPP version; it is
    never sent. ``field`` is the payload path (``expiryDate``, ``chargingProfile/chargingSchedule/0/...``)."""

    def __init__(self, version: str, action: str, field: str, problem: str, code: str) -> None:
        super().__init__(code, f"{field}: {problem}"[:250])
        self.version, self.action, self.field, self.problem = version, action, field, problem

    def __str__(self) -> str:
        return f"invalid {self.action} (OCPP {self.version}): {self.description}"


_outgoing: dict[tuple[str, str], Any] = {}


def _call_validator(version: str, action: str) -> Any:
    key = (version, action)
    if key not in _outgoing:
        try:
            library = get_validator(CALL, action, version)
        except (OSError, ValueError):
            raise InvalidCall(version, action, "action", f"{action} is not an OCPP {version} action",
                              "NotImplemented") from None  # fmt: skip
        _outgoing[key] = library.evolve(format_checker=_FORMATS)
    return _outgoing[key]


def validate_call(version: str, action: str, payload: Any) -> None:
    """Return if ``payload`` is a valid ``action`` CALL of ``version`` to send to a charger, formats included
    (the incoming path stays lenient on formats; what the hub sends must be exact); raise :class:`InvalidCall`
    naming the first wrong field otherwise."""
    validator = _call_validator(version, action)
    try:
        error = best_match(validator.iter_errors(payload))
    except TypeError as exc:  # e.g. multipleOf on a Decimal
        raise InvalidCall(version, action, "payload", str(exc), "FormatViolation") from None
    if error is None:
        return
    field = "/".join(str(p) for p in error.absolute_path) or "payload"
    problem = error.message
    if error.validator == "format":
        hint = " (RFC 3339, e.g. 2026-12-01T10:00:00Z)" if error.validator_value == "date-time" else ""
        problem = f"{error.instance!r} is not a valid {error.validator_value}{hint}"
    raise InvalidCall(version, action, field, problem, schema_error(error).code)
