"""Where a partner's ``response_url`` may point: only at the partner's own registered hosts.

A command's (or charging-profile request's) result is POSTed by the hub to the ``response_url`` the partner
gives. Unchecked, that lets a partner make the hub POST to any host and port (a blind SSRF). The hosts a partner
registered are those of the URLs it gave in the credentials handshake: its versions URL and the endpoints of
its version details. A ``response_url`` must be an absolute ``http``/``https`` URL on one of those hosts (host
and port, the default port of the scheme when none is given); anything else is refused with 2001 (invalid or
missing parameters) before anything is stored, so nothing is ever sent there. A result due for a command
recorded before this rule (or for a partner that has since moved hosts) is dropped rather than sent
(:func:`on_registered_host`, checked again when the result is queued).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from kernel.models.roaming import OcpiPartner
from ocpi import status
from ocpi.envelope import OcpiError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host(url: str) -> tuple[str, int] | None:
    """(host, port) of an absolute http(s) URL, lower-cased; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def registered_hosts(partner: OcpiPartner) -> set[tuple[str, int]]:
    """The (host, port) pairs of the partner's versions URL and of its registered endpoints."""
    urls = [partner.versions_url or "", *(str(e.get("url") or "") for e in partner.endpoints or [])]
    return {h for h in map(_host, urls) if h is not None}


def on_registered_host(partner: OcpiPartner, url: str) -> bool:
    """Whether ``url`` is an http(s) URL on one of the partner's registered hosts."""
    host = _host(url)
    return host is not None and host in registered_hosts(partner)


def check_response_url(partner: OcpiPartner, url: str) -> None:
    """2001 (HTTP 400) unless ``url`` is an http(s) URL on one of the partner's registered hosts."""
    host = _host(url)
    if host is None:
        raise OcpiError(status.INVALID_PARAMETERS, f"response_url {url[:200]!r} is not an http(s) URL")
    if host not in registered_hosts(partner):
        raise OcpiError(
            status.INVALID_PARAMETERS,
            f"response_url {url[:200]!r} is not on a host this partner registered (its versions URL and endpoints)",
        )
