"""What a trusted reverse proxy may tell us about the client (TLS ends at the proxy).

``SCIM_BRIDGE_FORWARDED_ALLOW_IPS`` names the proxies. Gunicorn's ``forwarded_allow_ips`` takes
the same list and honours ``X-Forwarded-Proto`` (the https scheme of ``meta.location`` and of
the token issuer when no public URL is set); :class:`TrustedProxy` does the same for
``X-Forwarded-For``, so the client address the app sees (logs, per-address throttling) is the
one the proxy saw, and a client talking to us directly cannot choose its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

__all__ = ["TrustedProxy", "parse_allowed"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed(allowed: str) -> list[Network] | None:
    """The networks of a comma-separated list of addresses or networks; ``None`` for ``*``
    (every peer is a trusted proxy). Raises ``ValueError`` on anything else, as gunicorn does
    (strictly: ``10.0.0.5/8`` has host bits set and is a mistake for ``10.0.0.0/8``)."""
    items = [item.strip() for item in allowed.split(",") if item.strip()]
    if "*" in items:
        return None
    return [ipaddress.ip_network(item) for item in items]


class TrustedProxy:
    """WSGI middleware: a request from a trusted proxy takes its client address from the last
    ``X-Forwarded-For`` entry, the one that proxy appended; any other keeps its peer address."""

    def __init__(self, app: Any, allowed: str) -> None:
        self._app = app
        self._networks = parse_allowed(allowed)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded and self._trusts(environ.get("REMOTE_ADDR", "")):
            client = _address(forwarded.split(",")[-1].strip())
            if client is not None:
                environ["REMOTE_ADDR"] = client
        return self._app(environ, start_response)  # type: ignore[no-any-return]

    def _trusts(self, peer: str) -> bool:
        if self._networks is None:
            return True
        address = _address(peer)
        return address is not None and any(
            ipaddress.ip_address(address) in network for network in self._networks)


def _address(text: str) -> str | None:
    """A bare IP address (IPv6 brackets removed), or ``None`` when it is not one."""
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None
