"""The subject identifiers an SSF receiver adds to or removes from its stream (SSF 1.0
§8.1.3): which of our users one names.

Pure: a JSON value in, a :class:`Named` (or ``None``) out. We read back what our SETs send
(events/sets.py): RFC 9493 ``iss_sub`` (our issuer and the user's id), ``email``, SSF §3.3
``complex`` whose ``user`` is one of those (and whose ``tenant``, if given, is the stream's,
as ``opaque``), and ``opaque`` with the user's id. A well-formed identifier that names nobody
we know of (another issuer or tenant, a format we never send such as ``phone_number``) names
no user: the request succeeds and changes nothing, as §8.1.3.2 and §8.1.3.3 allow, since a 404
would let a receiver probe who uses the service (§9.1). A malformed one is a 400. A complex
subject with other members (one ``session``, a ``device``) is a 400 too: removal is per user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidValue

__all__ = ["Named", "named_user"]

#: The members of each simple format we read (RFC 9493 §3.2.1, §3.2.2, §3.2.4).
_MEMBERS = {"iss_sub": ("iss", "sub"), "email": ("email",), "opaque": ("id",)}
_COMPLEX_MEMBERS = ("format", "user", "tenant")
_LONGEST = 2048


@dataclass(frozen=True)
class Named:
    """A user as a subject identifier names them: by ``user_id`` or by ``email``."""

    user_id: str | None = None
    email: str | None = None


def named_user(subject: Any, *, issuer: str, tenant: str) -> Named | None:
    """The user ``subject`` names to a stream of ``tenant`` whose SETs ``issuer`` signs;
    ``None`` when it names nobody of ours. Raises ``InvalidValue`` for a malformed one."""
    if _checked(subject, "subject") != "complex":
        return _simple(subject, issuer)
    unsupported = [name for name in subject if name not in _COMPLEX_MEMBERS]
    if unsupported:
        raise InvalidValue(f"a complex 'subject' is added or removed by its 'user' (and "
                           f"'tenant'); '{unsupported[0][:100]}' is not supported: subjects "
                           f"are users")
    if "user" not in subject:
        raise InvalidValue("a complex 'subject' must name a 'user'")
    user = subject["user"]
    if _checked(user, "subject.user") == "complex":
        raise InvalidValue("'subject.user' must be a simple subject identifier, not complex")
    if "tenant" in subject:
        scope = subject["tenant"]
        if _checked(scope, "subject.tenant") != "opaque" or scope["id"] != tenant:
            return None
    return _simple(user, issuer)


def _checked(value: Any, where: str) -> str:
    """The format of a well-formed subject identifier (its members checked when the format
    is one we read); a 400 naming ``where`` otherwise."""
    if (not isinstance(value, Mapping) or not isinstance(value.get("format"), str)
            or not value["format"] or len(value) < 2):
        raise InvalidValue(f"'{where}' must be a subject identifier: an object with 'format' "
                           f"and that format's members (RFC 9493)")
    form = str(value["format"])
    members = _MEMBERS.get(form)
    if members is None:
        return form
    unknown = [name for name in value if name != "format" and name not in members]
    if unknown:
        raise InvalidValue(f"'{where}' of format '{form}' has the unknown member "
                           f"'{unknown[0][:100]}'; it has: {', '.join(members)}")
    for name in members:
        member = value.get(name)
        if not isinstance(member, str) or not member or len(member) > _LONGEST:
            raise InvalidValue(f"'{where}.{name}' must be a non-empty string of at most "
                               f"{_LONGEST} characters")
    if form == "email" and "@" not in value["email"]:
        raise InvalidValue(f"'{where}.email' must be an email address")
    return form


def _simple(value: Mapping[str, Any], issuer: str) -> Named | None:
    form = value["format"]
    if form == "iss_sub":
        return Named(user_id=value["sub"]) if value["iss"] == issuer else None
    if form == "opaque":
        return Named(user_id=value["id"])
    if form == "email":
        return Named(email=value["email"])
    return None
