"""SQL for the admin's user search: which users of a tenant match a free-text prefix, a group,
a status and a SCIM filter, and the keyset cursor that pages them by userName.

A prefix match is a range, ``key >= 'amy' AND key < 'amz'``, which a b-tree index answers
(``LIKE 'amy%'`` is used by neither SQLite's default index nor PostgreSQL's under a non-C
collation). The range is exact only in code-point order, so on PostgreSQL both the comparison and
the index (migration 0005) use ``COLLATE "C"``; SQLite's default BINARY collation is that order.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Select, func, or_, select, true, tuple_, union
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from ..errors import InvalidValue
from ..models import Group, Membership, User, UserValue
from ..scim.formats import fold
from ..scim.schema import USER_TYPE
from .filters import compile_filter

__all__ = ["after_cursor", "cursor_of", "in_group", "in_tenant", "matching_prefix", "scim_filter"]

_LAST_CODE_POINT = 0x10FFFF


class _CodePointOrder(FunctionElement[str]):
    """A string expression compared in code-point order (``COLLATE "C"`` on PostgreSQL)."""

    inherit_cache = True
    name = "code_point_order"


@compiles(_CodePointOrder)
def _plain(element: _CodePointOrder, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_CodePointOrder, "postgresql")
def _collate_c(element: _CodePointOrder, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'


class _Unselective(FunctionElement[bool]):
    """A condition true for most rows: SQLite's ``likely()``, so that without table statistics
    its planner drives a query from the selective search or group id list, not from an index
    on ``tenant_id`` that would visit every user of the tenant. Other databases: unchanged."""

    inherit_cache = True
    name = "unselective"
    type = Boolean()


@compiles(_Unselective)
def _unchanged(element: _Unselective, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_Unselective, "sqlite")
def _likely(element: _Unselective, compiler: Any, **kw: Any) -> str:
    return f"likely({compiler.process(element.clauses, **kw)})"


def in_tenant(tenant_id: int, *, selective: bool) -> ColumnElement[bool]:
    """The tenant's users; marked unselective beside a search or group, whose id list is the
    better start (without one, the (tenant, userName) index serves the order and the cursor)."""
    condition = User.tenant_id == tenant_id
    return _Unselective(condition) if selective else condition


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    ordered = _CodePointOrder(column)
    last = ord(prefix[-1])
    if last == _LAST_CODE_POINT:  # no successor: the range's lower half, then LIKE
        return (ordered >= prefix) & column.startswith(prefix, autoescape=True)
    return (ordered >= prefix) & (ordered < prefix[:-1] + chr(last + 1))


def matching_prefix(tenant_id: int, text: str) -> ColumnElement[bool]:
    """Users whose userName, displayName, given or family name or an email starts with
    ``text``, case-insensitively, or whose externalId is ``text``: a union of index scans."""
    needle = fold(text)
    in_tenant = User.tenant_id == tenant_id
    arms: list[Select[Any]] = [
        select(User.id).where(in_tenant, _starts_with(User.user_name_key, needle)),
        *(
            select(User.id).where(in_tenant, _starts_with(func.lower(column), needle))
            for column in (User.display_name, User.name_given, User.name_family)
        ),
        select(UserValue.user_id).where(
            UserValue.attribute == "emails", _starts_with(UserValue.value_key, needle)
        ),
        # An IdP's id pasted from its console: exact (caseExact), by its unique index.
        select(User.id).where(in_tenant, User.external_id == text.strip()),
    ]
    return User.id.in_(union(*arms))


def in_group(tenant_id: int, group: str) -> ColumnElement[bool]:
    """Members of the tenant's group with this id (or, for people typing, this displayName)."""
    groups = select(Group.id).where(
        Group.tenant_id == tenant_id, or_(Group.id == group, Group.display_name_key == fold(group))
    )
    return User.id.in_(select(Membership.user_id).where(Membership.group_id.in_(groups)))


def scim_filter(text: str) -> ColumnElement[bool]:
    """A SCIM filter over users (RFC 7644 §3.4.2.2), compiled as /Users compiles it."""
    if not text.strip():
        return true()
    return compile_filter(text, USER_TYPE)


def cursor_of(user: User) -> str:
    """An opaque cursor after ``user`` in (userName key, id) order."""
    raw = json.dumps([user.user_name_key, user.id], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def after_cursor(cursor: str) -> ColumnElement[bool]:
    """Users after the cursor; a cursor this API did not make is a 400 naming ``after``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, user_id = json.loads(raw.decode("utf-8"))
        if not (isinstance(key, str) and isinstance(user_id, str)) or "\x00" in key + user_id:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidValue("'after' must be a next_cursor returned by this API") from None
    return tuple_(User.user_name_key, User.id) > tuple_(key, user_id)
