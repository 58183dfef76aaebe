"""What receivers subscribe to: the outbound topics, one vocabulary for every way out (webhook
``type``; SSF maps them to CAEP/RISC event URIs), and which recorded events carry which topic.

A recorded event carries its cause's topic, if it has one, and ``session.revoked`` when it
ended sessions: a member removal that logged the user out is both ``group.member_removed`` and
``session.revoked``.
"""

from __future__ import annotations

SESSION_REVOKED = "session.revoked"
USER_DEACTIVATED = "user.deactivated"
USER_REACTIVATED = "user.reactivated"
USER_DELETED = "user.deleted"
GROUP_MEMBER_REMOVED = "group.member_removed"
GROUP_DELETED = "group.deleted"

TOPICS = (
    SESSION_REVOKED, USER_DEACTIVATED, USER_REACTIVATED, USER_DELETED, GROUP_MEMBER_REMOVED,
    GROUP_DELETED,
)
