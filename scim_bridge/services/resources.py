"""Reading users and groups as SCIM resources: one resource, a page of a list, or the root
search across both (RFC 7644 §3.4), with their groups or members loaded in one query."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from ..models import Group, User
from ..scim.listing import ListQuery, list_response
from ..scim.projection import project, wants
from ..scim.schema import GROUP_TYPE, USER_TYPE, ResourceType
from ..store.listing import page
from ..store.resources import group_to_document, user_to_document
from .groups import members_of
from .users import groups_of


def render_users(
    db: Session, rows: list[User], query: ListQuery, base_url: str, *, new: bool = False
) -> list[dict[str, Any]]:
    """SCIM documents of ``rows``; ``new`` users were created by this request: no groups yet."""
    want_groups = not new and wants("groups", query.attributes, query.excluded_attributes,
                                    USER_TYPE)
    memberships = groups_of(db, [u.id for u in rows]) if want_groups else {}
    return [
        project(
            user_to_document(user, memberships.get(user.id, []), base_url),
            query.attributes,
            query.excluded_attributes,
            USER_TYPE,
        )
        for user in rows
    ]


def render_groups(
    db: Session, rows: list[Group], query: ListQuery, base_url: str
) -> list[dict[str, Any]]:
    want_members = wants("members", query.attributes, query.excluded_attributes, GROUP_TYPE)
    members = members_of(db, [grp.id for grp in rows]) if want_members else {}
    return [
        project(
            group_to_document(grp, members.get(grp.id, []) if want_members else None, base_url),
            query.attributes,
            query.excluded_attributes,
            GROUP_TYPE,
        )
        for grp in rows
    ]


def search(
    db: Session, tenant_id: int, resource_type: ResourceType, query: ListQuery, base_url: str
) -> dict[str, Any]:
    """A ListResponse of users or groups."""
    if resource_type is USER_TYPE:
        total, users = page(db, User, USER_TYPE, tenant_id, query)
        resources = render_users(db, users, query, base_url)
    else:
        total, groups = page(db, Group, GROUP_TYPE, tenant_id, query)
        resources = render_groups(db, groups, query, base_url)
    return list_response(resources, total, query.start_index)


def search_all(db: Session, tenant_id: int, query: ListQuery, base_url: str) -> dict[str, Any]:
    """Root search (RFC 7644 §3.4.3): users first, then groups, paged across both."""
    probe = ListQuery(filter=query.filter, count=0)
    user_total, _ = page(db, User, USER_TYPE, tenant_id, probe)
    group_total, _ = page(db, Group, GROUP_TYPE, tenant_id, probe)
    resources: list[dict[str, Any]] = []
    start, remaining = query.start_index, query.count
    if start <= user_total and remaining:
        _, users = page(db, User, USER_TYPE, tenant_id,
                        replace(query, start_index=start, count=remaining))
        resources += render_users(db, users, query, base_url)
        remaining -= len(users)
    group_start = max(1, start - user_total)
    if remaining and group_start <= group_total:
        _, groups = page(db, Group, GROUP_TYPE, tenant_id,
                         replace(query, start_index=group_start, count=remaining))
        resources += render_groups(db, groups, query, base_url)
    return list_response(resources, user_total + group_total, query.start_index)
