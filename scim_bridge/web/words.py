"""How the page words numbers, actors and causes (one place, shared by views and templates)."""

from __future__ import annotations

from typing import Any

#: What each event type means for the user's access, as the timeline says it.
EVENT_WORDS = {
    "user_created": "Provisioned",
    "user_updated": "Profile updated",
    "user_deactivated": "Deactivated",
    "user_reactivated": "Re-activated",
    "user_deleted": "Deleted",
    "member_added": "Added to group",
    "member_removed": "Removed from group",
    "group_deleted": "Group deleted",
    "force_logout": "Forced logout",
    "logout": "Signed out",
}


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def logged_out(users: int, sessions: int) -> str:
    return (f"Logged out {plural(users, 'user', 'users')}, "
            f"{plural(sessions, 'session', 'sessions')} ended")


def actor(name: str | None) -> str:
    """``scim:okta-prod`` -> "IdP token okta-prod"; ``admin:console`` -> "admin console"."""
    kind, _, who = (name or "").partition(":")
    label = {"scim": "IdP token", "admin": "admin", "sessions": "application",
             "cli": "command line"}.get(kind)
    return f"{label} {who}" if label and who else (name or "unknown")


def cause(event: dict[str, Any]) -> str:
    words = EVENT_WORDS.get(event["type"], event["type"])
    if event.get("detail"):
        return f"{words}: {event['detail']}"
    return f"{words} ({event['group_name']})" if event.get("group_name") else words


def when(iso: str | None) -> str:
    """``2026-12-02T18:58:47.526992Z`` -> ``2026-12-02 18:58:47 UTC``."""
    if not iso:
        return ""
    day, _, clock = iso.partition("T")
    return f"{day} {clock[:8]} UTC" if clock else day
