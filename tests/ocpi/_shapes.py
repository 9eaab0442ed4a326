"""Check a JSON object against the OCPI field tables of the specification: exactly OCPI, nothing else.

``check(obj, "Location", version="2.2.1")`` returns a list of problems (empty when the object is exactly
OCPI), each naming the path of the field: an unknown field, a missing required field, a null, a value of
the wrong JSON type, an enum value the spec does not list, a string longer than its maximum, a CiString with
non-printable or non-ASCII characters, a string off the regex the spec gives (coordinates, times of day,
dates), a DateTime not in the spec's format (RFC 3339 UTC, ``Z`` optional, at
most 25 characters), a number with more than 4 decimals, an empty list where the card. is ``+``, a choice
(2.1.1 Hours) with not exactly one alternative. A number is an int, a float (``json.loads``) or a Decimal
(``kernel.jsonutil.loads``, and the hub's objects before its JSON codec writes them as numbers), its decimals
counted the same way. Nested objects and lists of them are checked recursively. The tables are the JSON in
``tests/fixtures/ocpi-221-fields`` and ``tests/fixtures/ocpi-211-fields``, extracted from the spec text.

``check_response(envelope, "Tariff", many=True)`` checks the OCPI response envelope and its data;
``assert_exact(obj, "CDR", "2.1.1")`` fails naming every problem.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FOLDERS = {"2.2.1": "ocpi-221-fields", "2.1.1": "ocpi-211-fields"}
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?")
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


@cache
def tables(version: str = "2.2.1") -> dict[str, Any]:
    """The extracted field tables of one OCPI version: {"objects": ..., "enums": ...}."""
    path = FIXTURES / FOLDERS[version] / "fields.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def check(
    obj: Any, name: str, version: str = "2.2.1", path: str | None = None, partial: bool = False
) -> list[str]:
    """Every way ``obj`` is not exactly the OCPI object ``name`` of ``version``; [] when it is.

    ``partial``: a PATCH body, whose top-level required fields may be absent (nested objects are whole).
    """
    where = path or name
    spec = tables(version)["objects"].get(name)
    if spec is None:
        raise KeyError(f"OCPI {version} has no object {name!r}")
    if not isinstance(obj, dict):
        return [f"{where}: expected a {name} object, got {type(obj).__name__}"]
    problems: list[str] = []
    for key in obj:
        if key not in spec:
            problems.append(f"{where}.{key}: unknown field (not in OCPI {version} {name})")
    choices = [key for key, field in spec.items() if field.get("choice")]
    if choices and not partial and sum(1 for key in choices if key in obj) != 1:
        problems.append(f"{where}: exactly one of {', '.join(choices)} must be set")
    for key, field in spec.items():
        if key not in obj:
            if field["card"] in {"1", "+"} and not field.get("choice") and not partial:
                problems.append(f"{where}.{key}: required field missing")
            continue
        problems.extend(_check_field(obj[key], field, version, f"{where}.{key}"))
    return problems


def assert_exact(obj: Any, name: str, version: str = "2.2.1", *, partial: bool = False) -> None:
    """Fail, naming every problem, unless ``obj`` is exactly the OCPI object ``name`` of ``version``."""
    problems = check(obj, name, version, partial=partial)
    assert problems == [], problems


def check_response(
    envelope: Any, data: str | None = None, version: str = "2.2.1", many: bool = False
) -> list[str]:
    """Check an OCPI response envelope; with ``data``, its data as that object (a list of them if ``many``)."""
    problems = check(envelope, "Response", version, "response")
    if not isinstance(envelope, dict):
        return problems
    if isinstance(envelope.get("status_code"), int) and not 1000 <= envelope["status_code"] <= 4999:
        problems.append(f"response.status_code: {envelope['status_code']} is not an OCPI status code")
    if data is None or "data" not in envelope:
        if data is not None:
            problems.append("response.data: missing")
        return problems
    if many:
        if not isinstance(envelope["data"], list):
            return [*problems, "response.data: expected a list"]
        for index, item in enumerate(envelope["data"]):
            problems.extend(check(item, data, version, f"data[{index}]"))
        return problems
    return [*problems, *check(envelope["data"], data, version, "data")]


def _check_field(value: Any, field: dict[str, Any], version: str, where: str) -> list[str]:
    if value is None:
        return [f"{where}: null (omit an unset field)"]
    if field["card"] in {"*", "+", "* or ?"} and field["type"] != "Array or Object or String":
        if not isinstance(value, list):
            return [f"{where}: expected a list of {field['type']}"]
        if field["card"] == "+" and not value:
            return [f"{where}: the list must not be empty (card. +)"]
        problems: list[str] = []
        for index, item in enumerate(value):
            problems.extend(_check_value(item, field, version, f"{where}[{index}]"))
        return problems
    return _check_value(value, field, version, where)


def _check_value(value: Any, field: dict[str, Any], version: str, where: str) -> list[str]:
    kind = field["type"]
    if value is None:
        return [f"{where}: null"]
    if "enum" in field:
        if value not in field["enum"]:
            return [f"{where}: {value!r} is not a {kind} value of OCPI {version}"]
        return []
    if kind in tables(version)["objects"]:
        return check(value, kind, version, where)
    checker = _PRIMITIVES.get(kind)
    if checker is None:
        return []  # "Array or Object or String": the caller checks the data
    return checker(value, field, where)


def _string(value: Any, field: dict[str, Any], where: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{where}: expected a string, got {type(value).__name__}"]
    if field.get("max") is not None and len(value) > field["max"]:
        return [f"{where}: {len(value)} characters, the maximum is {field['max']}"]
    if field.get("pattern") is not None and not re.fullmatch(field["pattern"], value):
        return [f"{where}: {value!r} does not match the spec's regex {field['pattern']}"]
    return []


def _cistring(value: Any, field: dict[str, Any], where: str) -> list[str]:
    problems = _string(value, field, where)
    if not problems and not PRINTABLE_ASCII.fullmatch(value):
        problems.append(f"{where}: a CiString is printable ASCII only: {value!r}")
    return problems


def _datetime(value: Any, field: dict[str, Any], where: str) -> list[str]:
    if not isinstance(value, str) or len(value) > 25 or not DATETIME.fullmatch(value):
        return [f"{where}: {value!r} is not an OCPI DateTime (e.g. 2015-06-29T20:39:09Z)"]
    return []


def _number(value: Any, field: dict[str, Any], where: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return [f"{where}: expected a JSON number, got {type(value).__name__} {value!r}"]
    exact = value if isinstance(value, Decimal) else Decimal(str(value))
    if not exact.is_finite():
        return [f"{where}: {value!r} is not a JSON number"]
    exponent = exact.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        return [f"{where}: {value} has more than 4 decimals"]
    return []


def _int(value: Any, field: dict[str, Any], where: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{where}: expected an integer, got {type(value).__name__} {value!r}"]
    return []


def _boolean(value: Any, field: dict[str, Any], where: str) -> list[str]:
    if not isinstance(value, bool):
        return [f"{where}: expected a boolean, got {type(value).__name__} {value!r}"]
    return []


def _url(value: Any, field: dict[str, Any], where: str) -> list[str]:
    problems = _string(value, {"max": 255}, where)
    if not problems and not re.match(r"https?://[^/\s]+", value):
        problems.append(f"{where}: {value!r} is not an absolute http(s) URL")
    return problems


_PRIMITIVES = {
    "string": _string,
    "CiString": _cistring,
    "DateTime": _datetime,
    "number": _number,
    "decimal": _number,
    "int": _int,
    "boolean": _boolean,
    "URL": _url,
}
