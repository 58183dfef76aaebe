"""What an IdP or an admin can do. Every operation takes a database session, flushes, and
never commits: the request edge owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The tenant a request acts in and who is acting, as the audit log names it."""

    tenant_id: int
    name: str
    #: Group additions revoke sessions too (for apps that cache group context).
    revoke_on_group_add: bool = False
