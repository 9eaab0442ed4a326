"""The pure parts of issue 15 item 5: which exceptions are bad input or an unreachable database
(:func:`kernel.failures.classify`), the bounds on kept unknown fields (:func:`kernel.validation.check_extras`) and
one log line per kind per interval (:class:`kernel.logs.RateLimitedLog`)."""

from __future__ import annotations

import decimal
import logging

import pytest
from sqlalchemy import exc as sa_exc

from kernel.failures import BAD_INPUT, UNAVAILABLE, classify
from kernel.logs import RateLimitedLog
from kernel.validation import check_extras


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException, cls: type[sa_exc.DBAPIError] = sa_exc.DBAPIError) -> sa_exc.DBAPIError:
    return cls("SELECT 1", {}, orig)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "kind", "status"),
    [
        (_wrapped(_PgError("22021")), BAD_INPUT, 422),  # NUL: character not in repertoire
        (_wrapped(_PgError("22003")), BAD_INPUT, 422),  # numeric value out of range
        (OverflowError("date value out of range"), BAD_INPUT, 422),
        (decimal.InvalidOperation(), BAD_INPUT, 422),
        (RecursionError(), BAD_INPUT, 422),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), BAD_INPUT, 422),
        (ConnectionRefusedError(111, "Connect call failed"), UNAVAILABLE, 503),
        (_wrapped(_PgError("57P01")), UNAVAILABLE, 503),  # admin shutdown
        (_wrapped(_PgError("08006")), UNAVAILABLE, 503),  # connection failure
        (sa_exc.TimeoutError("QueuePool limit reached"), UNAVAILABLE, 503),
        (_wrapped(Exception("unable to open database file"), sa_exc.OperationalError), UNAVAILABLE, 503),
    ],
)
def test_classify(exc: BaseException, kind: str, status: int) -> None:
    failure = classify(exc)
    assert failure is not None and (failure.kind, failure.status) == (kind, status)
    assert (failure.retry_after is not None) == (kind == UNAVAILABLE)


@pytest.mark.parametrize(
    "exc",
    [ValueError("bug"), KeyError("x"), _wrapped(_PgError("23505"), sa_exc.IntegrityError), RuntimeError()],
)
def test_bugs_are_not_classified(exc: BaseException) -> None:
    assert classify(exc) is None


def test_a_cause_is_followed() -> None:
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise RuntimeError("while reading") from inner
    except RuntimeError as outer:
        failure = classify(outer)
    assert failure is not None and failure.kind == UNAVAILABLE


def test_check_extras_bounds_size_and_depth() -> None:
    check_extras(None)
    check_extras({"x_note": "short", "x_list": [1, 2, {"a": [3]}]})
    with pytest.raises(ValueError, match="bytes"):
        check_extras({"x_blob": "z" * 5000})
    deep: object = 1
    for _ in range(20):
        deep = {"a": deep}
    with pytest.raises(ValueError, match="levels"):
        check_extras({"x_deep": deep})


def test_rate_limited_log_one_line_per_kind_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelimited"), 10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, "test.ratelimited")
    assert limited.warning("unavailable", "database down")
    for _ in range(50):
        assert not limited.warning("unavailable", "database down")
    assert limited.warning("bad_input", "other kind")  # another kind has its own interval
    now[0] += 10.0
    assert limited.warning("unavailable", "database down")
    lines = [r for r in caplog.records if r.name == "test.ratelimited"]
    assert [r.fields["kind"] for r in lines] == ["unavailable", "bad_input", "unavailable"]  # type: ignore[attr-defined]
    assert lines[-1].fields["suppressed"] == 50  # type: ignore[attr-defined]
    assert not any(r.exc_info for r in lines)
