"""What a partner's answer to a push means for the outbox (issue 13): delivered, a transient failure retried with
backoff, or a refusal that parks the message at once with its reason.

A partner that is deploying, restarting, overloaded or briefly confused about its tokens answers all sorts of
4xx, so only the answers that say *this request is wrong in itself* park it; every other failure is retried
(with ``max_attempts`` parking it in the end, see :mod:`kernel.outbox`). Decided per HTTP status:

* retried: 5xx; 401, 403 (token problems: some libraries answer 403), whatever the body; 404 without an OCPI
  2xxx body (a partner mid-deploy serves 404 pages); 405, 406, 408, 421, 425, 429 and any 4xx not listed below;
  1xx/3xx; a 2xx without an OCPI envelope or with a status_code outside 1xxx/2xxx (3xxx server errors, 4xxx hub
  errors);
* retried **for that object only** (``DeliveryResult.isolated``: the partner is up and answered, but not for this
  object): 409 Conflict, 412 and 428 (a precondition), 423 Locked, 424 Failed Dependency. The row backs off on
  its own; the partner's lane is not paused, so the partner's other objects keep going;
* parked (refused): 400, 410, 411, 413, 414, 415, 422, 431; an OCPI 2xxx client error in a 2xx answer; and a
  404 whose body is an OCPI 2xxx (the partner's OCPI application itself says it does not know the object the
  message refers to, e.g. 2003 *unknown location*: a re-sync sends the object whole);
* delivered: a 2xx with an OCPI 1xxx status_code.

``Retry-After`` (seconds) is honoured on a retried answer (capped by the backoff policy).
"""

from __future__ import annotations

from typing import Any

from kernel.outbox import DeliveryResult

REFUSED_HTTP = frozenset({400, 410, 411, 413, 414, 415, 422, 431})
"""HTTP statuses that say the request itself is wrong: parked at once."""
OBJECT_CONFLICT_HTTP = frozenset({409, 412, 423, 424, 428})
"""HTTP statuses about one object's state at the partner (a conflict, a precondition): that row is retried with
its own backoff, the partner's lane keeps delivering the others."""


def _code(status_code: Any) -> int | None:
    try:
        return int(status_code)
    except (TypeError, ValueError):
        return None


def _retry_after(headers: dict[str, str]) -> float | None:
    value = (headers.get("retry-after") or headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None


def classify(
    http_status: int, status_code: Any, headers: dict[str, str], where: str, info: dict[str, Any]
) -> DeliveryResult:
    """The outcome of one answer: ``where`` describes it for the error, ``info`` is kept on the row."""
    code = _code(status_code)
    client_error = code is not None and 2000 <= code < 3000
    if http_status in REFUSED_HTTP or (http_status == 404 and client_error):
        return DeliveryResult(ok=False, permanent=True, error=where, result=info)
    if http_status in OBJECT_CONFLICT_HTTP:
        return DeliveryResult(
            ok=False, error=where, retry_after=_retry_after(headers), result=info, isolated=True
        )
    if not 200 <= http_status < 300:
        return DeliveryResult(ok=False, error=where, retry_after=_retry_after(headers), result=info)
    if code is not None and 1000 <= code < 2000:
        return DeliveryResult(ok=True, result=info)
    if client_error:
        return DeliveryResult(ok=False, permanent=True, error=where, result=info)
    return DeliveryResult(ok=False, error=where, retry_after=_retry_after(headers), result=info)
