"""SCIM 2.0 under ``/scim/v2`` (RFC 7644), behind a ``scim``-scope token."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, g, request

from ..auth import authenticate
from ..errors import BridgeError, InvalidSyntax, NotFound, NotModified
from ..models import Group, User
from ..scim import discovery
from ..scim.projection import project, wants
from ..scim.resources import etag, group_to_document, user_to_document
from ..scim.schema import ERROR, GROUP_TYPE, LIST_RESPONSE, USER_TYPE, ResourceType
from ..services import Actor, bulk, groups, users
from ..services.listing import ListQuery, list_query, page
from .edge import base_url, db, json_body, settings

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")

SCIM_JSON = "application/scim+json"


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, mimetype=SCIM_JSON)


def scim_error(error: BridgeError) -> Response:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(error.status), "detail": error.detail}
    if error.scim_type:
        body["scimType"] = error.scim_type
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="scim-bridge", error="invalid_token"'
    return scim_response(body, error.status, headers)


@bp.before_request
def _authenticate() -> None:
    g.started = time.perf_counter()
    principal = authenticate(db(), request.headers.get("Authorization"), "scim")
    g.principal = principal
    g.actor = Actor(
        tenant_id=principal.tenant_id,
        name=f"scim:{principal.token_name}",
        revoke_on_group_add=settings().revoke_on_group_add,
    )


def _scim_base() -> str:
    return f"{base_url()}/scim/v2"


def _query() -> ListQuery:
    return list_query(request.args, settings().max_page_size)


def _list_body(total: int, query: ListQuery, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": query.start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _precondition_headers(version: int) -> dict[str, str]:
    tag = etag(version)
    if_none_match = request.headers.get("If-None-Match")
    if request.method == "GET" and if_none_match and tag in {
        t.strip() for t in if_none_match.split(",")
    } | ({tag} if if_none_match.strip() == "*" else set()):
        raise NotModified("not modified")
    return {"ETag": tag}


# --- Users -------------------------------------------------------------------------------------


def render_users(
    rows: list[Any], query: ListQuery, *, new: bool = False
) -> list[dict[str, Any]]:
    """SCIM documents of ``rows``; ``new`` users were created by this request: no groups yet."""
    base = _scim_base()
    want_groups = not new and wants("groups", query.attributes, query.excluded_attributes,
                                    USER_TYPE)
    memberships = users.groups_of(db(), [u.id for u in rows]) if want_groups else {}
    return [
        project(
            user_to_document(user, memberships.get(user.id, []), base),
            query.attributes,
            query.excluded_attributes,
            USER_TYPE,
        )
        for user in rows
    ]


def _user_response(user: Any, status: int = 200) -> Response:
    query = _query()
    headers = _precondition_headers(user.version)
    if status == 201:
        headers["Location"] = f"{_scim_base()}/Users/{user.id}"
    return scim_response(render_users([user], query, new=status == 201)[0], status, headers)


@bp.get("/Users")
def list_users() -> Response:
    return _search(USER_TYPE, _query())


@bp.post("/Users")
def create_user() -> Response:
    return _user_response(users.create_user(db(), g.actor, json_body()), 201)


@bp.get("/Users/<user_id>")
def get_user(user_id: str) -> Response:
    return _user_response(users.get_user(db(), g.actor.tenant_id, user_id))


@bp.put("/Users/<user_id>")
def replace_user(user_id: str) -> Response:
    if_match = request.headers.get("If-Match")
    return _user_response(users.replace_user(db(), g.actor, user_id, json_body(), if_match))


@bp.patch("/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    if_match = request.headers.get("If-Match")
    return _user_response(users.patch_user(db(), g.actor, user_id, json_body(), if_match))


@bp.delete("/Users/<user_id>")
def delete_user(user_id: str) -> Response:
    users.delete_user(db(), g.actor, user_id, request.headers.get("If-Match"))
    return Response(status=204)


# --- Groups ------------------------------------------------------------------------------------


def render_groups(rows: list[Any], query: ListQuery) -> list[dict[str, Any]]:
    base = _scim_base()
    want_members = wants("members", query.attributes, query.excluded_attributes, GROUP_TYPE)
    members = groups.members_of(db(), [grp.id for grp in rows]) if want_members else {}
    return [
        project(
            group_to_document(grp, members.get(grp.id, []) if want_members else None, base),
            query.attributes,
            query.excluded_attributes,
            GROUP_TYPE,
        )
        for grp in rows
    ]


def _group_response(group: Any, status: int = 200) -> Response:
    query = _query()
    headers = _precondition_headers(group.version)
    if status == 201:
        headers["Location"] = f"{_scim_base()}/Groups/{group.id}"
    return scim_response(render_groups([group], query)[0], status, headers)


@bp.get("/Groups")
def list_groups() -> Response:
    return _search(GROUP_TYPE, _query())


@bp.post("/Groups")
def create_group() -> Response:
    return _group_response(groups.create_group(db(), g.actor, json_body()), 201)


@bp.get("/Groups/<group_id>")
def get_group(group_id: str) -> Response:
    return _group_response(groups.get_group(db(), g.actor.tenant_id, group_id))


@bp.put("/Groups/<group_id>")
def replace_group(group_id: str) -> Response:
    if_match = request.headers.get("If-Match")
    return _group_response(groups.replace_group(db(), g.actor, group_id, json_body(), if_match))


@bp.patch("/Groups/<group_id>")
def patch_group(group_id: str) -> Response:
    """204 by default (what Entra expects); 200 with the group when ``attributes`` asks."""
    if_match = request.headers.get("If-Match")
    group = groups.patch_group(db(), g.actor, group_id, json_body(), if_match)
    if "attributes" in request.args or "excludedAttributes" in request.args:
        return _group_response(group)
    return Response(status=204, headers={"ETag": etag(group.version)})


@bp.delete("/Groups/<group_id>")
def delete_group(group_id: str) -> Response:
    groups.delete_group(db(), g.actor, group_id, request.headers.get("If-Match"))
    return Response(status=204)


# --- Search, Bulk, discovery --------------------------------------------------------------------


def _search(resource_type: ResourceType, query: ListQuery) -> Response:
    model = User if resource_type is USER_TYPE else Group
    total, rows = page(db(), model, resource_type, g.actor.tenant_id, query)
    render = render_users if resource_type is USER_TYPE else render_groups
    return scim_response(_list_body(total, query, render(rows, query)))


def _search_body() -> ListQuery:
    body = json_body()
    if not isinstance(body, dict):
        raise InvalidSyntax("a SearchRequest must be a JSON object")
    return list_query(body, settings().max_page_size)


@bp.post("/Users/.search")
def search_users() -> Response:
    return _search(USER_TYPE, _search_body())


@bp.post("/Groups/.search")
def search_groups() -> Response:
    return _search(GROUP_TYPE, _search_body())


@bp.post("/.search")
def search_all() -> Response:
    """Root search (RFC 7644 §3.4.3): users first, then groups, paged across both."""
    query = _search_body()
    session = db()
    tenant_id = g.actor.tenant_id
    probe = ListQuery(filter=query.filter, count=0)
    user_total, _ = page(session, User, USER_TYPE, tenant_id, probe)
    group_total, _ = page(session, Group, GROUP_TYPE, tenant_id, probe)
    resources: list[dict[str, Any]] = []
    start, remaining = query.start_index, query.count
    if start <= user_total and remaining:
        _, rows = page(session, User, USER_TYPE, tenant_id,
                       replace(query, start_index=start, count=remaining))
        resources += render_users(rows, query)
        remaining -= len(rows)
    group_start = max(1, start - user_total)
    if remaining and group_start <= group_total:
        _, rows = page(session, Group, GROUP_TYPE, tenant_id,
                       replace(query, start_index=group_start, count=remaining))
        resources += render_groups(rows, query)
    return scim_response(_list_body(user_total + group_total, query, resources))


@bp.post("/Bulk")
def bulk_request() -> Response:
    config = settings()
    result = bulk.process(
        db(),
        g.actor,
        json_body(allow_nul=True),  # a NUL fails only the operation that holds it
        base_url=_scim_base(),
        max_operations=config.bulk_max_operations,
        render_user=lambda user, new: render_users([user], ListQuery(), new=new)[0],
        render_group=lambda group: render_groups([group], ListQuery())[0],
    )
    return scim_response(result)


@bp.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    config = settings()
    return scim_response(
        discovery.service_provider_config(
            _scim_base(),
            max_operations=config.bulk_max_operations,
            max_payload=config.max_payload_bytes,
            max_results=config.max_page_size,
        )
    )


@bp.get("/ResourceTypes")
def resource_types() -> Response:
    return scim_response(discovery.list_response(discovery.resource_types(_scim_base())))


@bp.get("/ResourceTypes/<type_id>")
def resource_type(type_id: str) -> Response:
    for document in discovery.resource_types(_scim_base()):
        if document["id"] == type_id:
            return scim_response(document)
    raise NotFound(f"no resource type '{type_id}'")


@bp.get("/Schemas")
def schemas() -> Response:
    return scim_response(discovery.list_response(discovery.schemas(_scim_base())))


@bp.get("/Schemas/<path:schema_id>")
def schema(schema_id: str) -> Response:
    for document in discovery.schemas(_scim_base()):
        if document["id"] == schema_id:
            return scim_response(document)
    raise NotFound(f"no schema '{schema_id}'")

