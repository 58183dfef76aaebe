"""The page's views: User Management (the landing page), Bulk User Logout and the single-row
force logout (one preview/confirm flow), a user's page and the events page. Each is parse, one
or two service calls, render; the services are those of the admin API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import g, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from ..endpoints.context import settings
from ..endpoints.transaction import db
from ..errors import InvalidValue
from ..services import admin, audit, deliveries
from .blueprint import bp, page, wants_json
from .words import logged_out, plural

PAGE_SIZE = 50
#: The Status select's choices and the admin API's ``active`` value of each.
STATUSES = {"": "", "active": "true", "inactive": "false"}
#: The request log's Status select: the admin API's ``status`` values.
REQUEST_STATUSES = {"": "All requests", "error": "Failures", "4xx": "4xx", "5xx": "5xx",
                    "2xx": "2xx"}


def _filters(source: Any) -> dict[str, str]:
    """The search form's fields as sent (GET query or the bulk form), trimmed."""
    values = {name: str(source.get(name, "")).strip() for name in ("search", "group", "status")}
    if values["status"] not in STATUSES:
        raise InvalidValue("'status' must be 'active', 'inactive' or empty")
    return values


def _selection(filters: dict[str, str]) -> dict[str, str]:
    """The admin API's selection parameters for the page's filters."""
    return {"search": filters["search"], "group": filters["group"],
            "active": STATUSES[filters["status"]]}


@bp.get("/")
def users() -> tuple[str, int]:
    filters = _filters(request.args)
    params = {**_selection(filters), "count": str(PAGE_SIZE)}
    after = request.args.get("after", "")
    if after:
        params["after"] = after
    listing = admin.list_users(db(), g.actor.tenant_id, params, settings().max_page_size)
    query = {k: v for k, v in filters.items() if v}
    return page(
        "users.html", listing=listing, filters=filters, query=query,
        groups=admin.group_choices(db(), g.actor.tenant_id),
        next_url=(url_for("admin_page.users") + "?" + urlencode(
            {**query, "after": listing["next_cursor"]})) if listing["next_cursor"] else None,
        first_url=(url_for("admin_page.users") + ("?" + urlencode(query) if query else ""))
        if after else None,
        status_message=session.pop("status_message", None),
    )


def _logout_body() -> tuple[dict[str, Any], dict[str, str]]:
    """What a bulk or row logout form asks for: one row (``only``), every user matching the
    filters (``all_matching``), or the checked rows (``user_ids``)."""
    form = request.form
    filters = _filters(form)
    only = form.get("only", "").strip()
    if only:
        return {"user_ids": [only]}, filters
    if form.get("all_matching") == "1":
        return dict(_selection(filters)), filters
    user_ids = [i for i in form.getlist("user_ids") if i.strip()]
    if not user_ids:
        raise InvalidValue("select at least one user, or 'Select all matching'")
    return {"user_ids": user_ids}, filters


@bp.post("/logout/preview")
def logout_preview() -> ResponseReturnValue:
    body, filters = _logout_body()
    preview = admin.bulk_logout(db(), g.actor, {**body, "dry_run": True})
    summary = {"users": preview["users"], "sessions": preview["sessions"],
               "confirm": preview["confirm"]}
    if wants_json():
        return jsonify(summary)
    return page("preview.html", preview=summary, body=body, filters=filters,
                only=request.form.get("only", ""), all_matching=request.form.get("all_matching"),
                back_url=_users_url(filters))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    body, filters = _logout_body()
    confirm = request.form.get("confirm", "")
    if not confirm:
        raise InvalidValue("confirm the preview's counts first; nobody was logged out")
    result = admin.bulk_logout(db(), g.actor, {**body, "confirm": confirm})
    message = logged_out(result["users"], result["revoked_sessions"])
    if wants_json():
        return jsonify({"users": result["users"], "revoked_sessions": result["revoked_sessions"],
                        "user_ids": body.get("user_ids"), "message": message})
    session["status_message"] = message
    return redirect(_users_url(filters), 303)


def _users_url(filters: dict[str, str]) -> str:
    query = {k: v for k, v in filters.items() if v}
    return url_for("admin_page.users") + ("?" + urlencode(query) if query else "")


@bp.get("/users/<user_id>")
def user(user_id: str) -> tuple[str, int]:
    tenant, most = g.actor.tenant_id, settings().max_page_size
    sessions = admin.user_sessions(db(), tenant, user_id, {}, most)  # 404 for another tenant's
    return page("user.html", user_id=user_id, profile=admin.user_profile(db(), tenant, user_id),
                sessions=sessions["sessions"], live=sessions["active_sessions"],
                history=audit.user_history(db(), tenant, user_id, {}, most)["events"])


@bp.get("/events")
def events() -> tuple[str, int]:
    status = request.args.get("status", "").strip().lower()
    if status not in REQUEST_STATUSES:
        raise InvalidValue("'status' must be one of: error, 4xx, 5xx, 2xx, or empty")
    tenant = g.actor.tenant_id
    recent = deliveries.attach(db(), audit.recent_events(db(), tenant, [], 100))
    requests_ = audit.list_requests(db(), tenant, {"status": status, "count": "100"},
                                    settings().max_page_size)["requests"]
    return page("events.html", events=recent, requests=requests_, status=status,
                statuses=REQUEST_STATUSES, status_message=session.pop("status_message", None))


@bp.post("/events/<event_id>/replay")
def replay(event_id: str) -> ResponseReturnValue:
    replayed = deliveries.replay_event(db(), g.actor.tenant_id, event_id)["replayed"]
    session["status_message"] = f"Event {event_id}: {plural(replayed, 'delivery', 'deliveries')} " \
        "queued again."
    return redirect(url_for("admin_page.events"), 303)
