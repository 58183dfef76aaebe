"""What an IdP or an admin can do. Every operation takes a database session, flushes, and
never commits: the request edge owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    """The tenant a request acts in and who is acting, as the audit log names it."""

    tenant_id: int
    name: str
    #: Group additions revoke sessions too (for apps that cache group context).
    revoke_on_group_add: bool = False
    #: The request acting (its ``X-Request-Id``), recorded on every event it causes; an actor
    #: built outside a request (the CLI) is one action with a fresh id.
    txn: str = field(default_factory=lambda: uuid.uuid4().hex)
