"""Where events may go: the one check of a receiver URL, for webhooks, back-channel logout
clients and SSF push streams alike, at registration and again before each send.

A URL is an absolute ``http``/``https`` URL with a host, no credentials, no fragment. With
``SCIM_BRIDGE_RECEIVER_URLS=any`` (the default: the app's services are usually internal) that
is all. With ``public``, its host must be a public address, and a host name must resolve only
to public addresses: loopback, private (RFC 1918, unique-local), link-local (cloud metadata
services live there), shared, reserved and multicast addresses are refused, so a tenant admin
cannot make the bridge call into its own network. The check runs again at send time, since a
name can start resolving elsewhere after registration.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ..errors import InvalidValue
from ..settings import RECEIVER_URL_RULES, Settings

__all__ = ["ANY", "PUBLIC", "RECEIVER_URL_RULES", "check_receiver_url", "check_url_syntax",
           "refusal"]

ANY, PUBLIC = RECEIVER_URL_RULES
_URL_LENGTH = 2048


def check_url_syntax(raw: object, field: str = "url") -> str:
    """An absolute http(s) URL with a host, no credentials and no fragment (400 otherwise)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidValue(f"'{field}' must be an http or https URL")
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise InvalidValue(f"'{field}' is not a valid URL: {raw[:200]!r}") from None
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment
            or parts.username is not None or len(raw) > _URL_LENGTH
            or any(c.isspace() or ord(c) < 32 for c in raw)):
        raise InvalidValue(f"'{field}' must be an absolute http or https URL without "
                           f"credentials or fragment, at most {_URL_LENGTH} characters: "
                           f"{raw[:200]!r}")
    return raw


def check_receiver_url(raw: object, settings: Settings, field: str = "url") -> str:
    """``raw`` if it is a well-formed URL that the ``receiver_urls`` setting (``any`` or
    ``public``) allows; else 400 ``InvalidValue`` naming the rule."""
    url = check_url_syntax(raw, field)
    problem = refusal(url, settings.receiver_urls)
    if problem:
        raise InvalidValue(f"'{field}' is refused: {problem}")
    return url


def refusal(url: str, rule: str) -> str | None:
    """Why ``rule`` refuses to send to ``url`` now (``None``: allowed). Resolves the host."""
    if rule != PUBLIC:
        return None
    host = urlsplit(url).hostname or ""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return f"its host {host[:100]!r} does not resolve"
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    for address in addresses:
        if not address.is_global or address.is_multicast:
            return (f"{host[:100]!r} is (or resolves to) the non-public address {address}, and "
                    f"SCIM_BRIDGE_RECEIVER_URLS=public allows only public addresses")
    return None
