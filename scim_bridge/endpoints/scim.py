"""SCIM 2.0 under ``/scim/v2`` (RFC 7644), behind a ``scim``-scope token."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from ..auth import authenticate
from ..errors import InvalidSyntax, NotFound
from ..observability import request_id
from ..scim import discovery
from ..scim.formats import etag, etag_matches
from ..scim.listing import ListQuery, list_query, list_response
from ..scim.schema import GROUP_TYPE, USER_TYPE, ResourceType
from ..services import Actor, bulk, groups, resources, users
from .context import base_url, json_body, settings
from .responses import scim_response
from .transaction import db

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")


@bp.before_request
def _authenticate() -> None:
    principal = authenticate(db(), request.headers.get("Authorization"), "scim")
    g.principal = principal
    g.actor = Actor(
        tenant_id=principal.tenant_id,
        name=f"scim:{principal.token_name}",
        revoke_on_group_add=settings().revoke_on_group_add,
        txn=request_id(),
    )


def _scim_base() -> str:
    return f"{base_url()}/scim/v2"


def _query() -> ListQuery:
    return list_query(request.args, settings().max_page_size)


def _resource_response(document: dict[str, Any], version: int, status: int) -> Response:
    """One resource with its ETag; 304 (with the ETag) when If-None-Match names its version."""
    headers = {"ETag": etag(version)}
    if request.method == "GET" and etag_matches(request.headers.get("If-None-Match"), version):
        return Response(status=304, headers=headers)
    if status == 201:
        headers["Location"] = document["meta"]["location"]
    return scim_response(document, status, headers)


# --- Users -------------------------------------------------------------------------------------


def _user_response(user: Any, status: int = 200) -> Response:
    document = resources.render_users(db(), [user], _query(), _scim_base(), new=status == 201)[0]
    return _resource_response(document, user.version, status)


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


def _group_response(group: Any, status: int = 200) -> Response:
    document = resources.render_groups(db(), [group], _query(), _scim_base())[0]
    return _resource_response(document, group.version, status)


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
    return scim_response(
        resources.search(db(), g.actor.tenant_id, resource_type, query, _scim_base())
    )


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
    return scim_response(
        resources.search_all(db(), g.actor.tenant_id, _search_body(), _scim_base())
    )


@bp.post("/Bulk")
def bulk_request() -> Response:
    config = settings()
    base = _scim_base()
    result = bulk.process(
        db(),
        g.actor,
        json_body(allow_unstorable=True),  # bad text fails only the operation holding it
        base_url=base,
        max_operations=config.bulk_max_operations,
        render_user=lambda user, new: resources.render_users(
            db(), [user], ListQuery(), base, new=new
        )[0],
        render_group=lambda group: resources.render_groups(db(), [group], ListQuery(), base)[0],
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
    return scim_response(list_response(discovery.resource_types(_scim_base())))


@bp.get("/ResourceTypes/<type_id>")
def resource_type(type_id: str) -> Response:
    for document in discovery.resource_types(_scim_base()):
        if document["id"] == type_id:
            return scim_response(document)
    raise NotFound(f"no resource type '{type_id}'")


@bp.get("/Schemas")
def schemas() -> Response:
    return scim_response(list_response(discovery.schemas(_scim_base())))


@bp.get("/Schemas/<path:schema_id>")
def schema(schema_id: str) -> Response:
    for document in discovery.schemas(_scim_base()):
        if document["id"] == schema_id:
            return scim_response(document)
    raise NotFound(f"no schema '{schema_id}'")

