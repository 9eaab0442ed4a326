"""Binding the hub's listening ports, or saying in one line which setting's port cannot be had.

``evhub serve`` listens on ``EVHUB_HTTP_HOST:EVHUB_HTTP_PORT`` (HTTP app) and ``EVHUB_OCPP_HOST:EVHUB_OCPP_PORT``
(OCPP). A port in use, a privileged port or an address this machine does not have becomes one
:class:`PortUnavailableError` naming the port and its variables, instead of a traceback from deep in the server.
"""

from __future__ import annotations

import errno
import socket


class PortUnavailableError(RuntimeError):
    """A listening address could not be bound; the message names the setting."""


def port_error(exc: OSError, host: str, port: int, *, host_var: str, port_var: str) -> PortUnavailableError:
    """The one-line explanation of a failed bind of ``host:port``, naming the variable to change."""
    if exc.errno == errno.EADDRINUSE:
        reason = (
            f"port {port} ({port_var}) is already in use; stop the other process or set another {port_var}"
        )
    elif exc.errno == errno.EACCES:
        reason = (
            f"port {port} ({port_var}) needs privileges this process does not have; set another {port_var}"
        )
    elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        reason = f"{host!r} ({host_var}) is not an address of this machine"
    else:
        reason = f"{' '.join(str(exc).split())} (check {host_var} and {port_var})"
    return PortUnavailableError(f"cannot listen on {host}:{port}: {reason}")


def bind_tcp(host: str, port: int, *, host_var: str, port_var: str) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), ready to hand to a server."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise port_error(exc, host, port, host_var=host_var, port_var=port_var) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise port_error(exc, host, port, host_var=host_var, port_var=port_var) from None
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (the system picks it; bound, then released), for
    the demo, local sinks, tests and benchmarks that start servers of their own."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
