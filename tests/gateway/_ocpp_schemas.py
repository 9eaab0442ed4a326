"""The official OCPP JSON schemas the ``ocpp`` library ships, read from its package files and applied here on
their own (not through the gateway's validator): :func:`call_problems` lists every way a CALL frame a charger
received is not valid against the request schema of its OCPP version, formats included (``date-time`` is
RFC 3339 with an offset, ``uri`` absolute), :func:`frame_problems` adds the OCPP-J frame rules (a message
id of at most 36 characters), :func:`result_problems` checks a CALLRESULT the hub answered against the
response schema, and :func:`minimal_call` builds the smallest valid CALL of an action from its schema."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import FormatChecker
from jsonschema.validators import validator_for

_PACKAGES = {"1.6": ("ocpp.v16", "{action}.json"), "2.0.1": ("ocpp.v201", "{action}Request.json")}
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_DATE_TIME.fullmatch(value))


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", value))


@cache
def _schema(version: str, name: str) -> dict[str, Any]:
    """The schema file ``name`` of OCPP ``version`` (1.6 or 2.0.1), as the library ships it."""
    package = _PACKAGES[version][0]
    text = (resources.files(package) / "schemas" / name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _problems(schema: dict[str, Any], what: str, payload: Any) -> list[str]:
    validator = validator_for(schema)(schema, format_checker=FORMATS)
    return [
        f"{what} {'/'.join(map(str, e.absolute_path)) or 'payload'}: {e.message}"
        for e in validator.iter_errors(payload)
    ]


def request_schema(version: str, action: str) -> dict[str, Any]:
    """The request schema of ``action`` in OCPP ``version`` (1.6 or 2.0.1), as the library ships it."""
    return _schema(version, _PACKAGES[version][1].format(action=action))


def call_problems(version: str, action: str, payload: Any) -> list[str]:
    """Every schema violation of the ``action`` CALL ``payload`` (empty when it is valid)."""
    return _problems(request_schema(version, action), f"{action} ({version})", payload)


def frame_problems(version: str, frame: list[Any]) -> list[str]:
    """A CALL frame ``[2, id, action, payload]``: the OCPP-J shape, a message id of 1..36 characters, and
    the payload against its schema."""
    if len(frame) != 4 or frame[0] != 2 or not isinstance(frame[2], str):
        return [f"not a CALL frame: {frame!r}"]
    problems = call_problems(version, frame[2], frame[3])
    if not isinstance(frame[1], str) or not 0 < len(frame[1]) <= 36:
        problems.append(f"{frame[2]}: message id {frame[1]!r} is not a string of 1..36 characters")
    return problems


def response_schema(version: str, action: str) -> dict[str, Any]:
    """The response (CALLRESULT) schema of ``action`` in OCPP ``version``, as the library ships it."""
    return _schema(version, f"{action}Response.json")


def result_problems(version: str, action: str, payload: Any) -> list[str]:
    """Every schema violation of the CALLRESULT ``payload`` the hub answered to an ``action`` CALL."""
    return _problems(response_schema(version, action), f"{action}Response ({version})", payload)


def minimal_call(version: str, action: str) -> dict[str, Any]:
    """The smallest valid ``action`` CALL of ``version``: its required properties only, each the first enum
    value, a short string, 1, a date-time, one item of a list."""
    schema = request_schema(version, action)
    return _minimal(schema, schema)


def _minimal(node: dict[str, Any], root: dict[str, Any]) -> Any:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _minimal(root["definitions"][name], root)
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object":
        return {k: _minimal(node["properties"][k], root) for k in node.get("required", [])}
    if kind == "array":
        return [_minimal(node["items"], root) for _ in range(max(1, node.get("minItems", 1)))]
    if kind == "string":
        return "2026-03-02T08:00:00Z" if node.get("format") == "date-time" else "x"
    if kind == "integer":
        return max(1, node.get("minimum", 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    return {}
