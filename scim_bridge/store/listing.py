"""Listing pages of users or groups: filter, stable sort and paging in SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ..errors import InvalidValue
from ..models import Group, User
from ..scim.listing import ListQuery
from ..scim.schema import ResourceType, resolve, split_urn_path
from .filters import compile_filter


def page(
    db: Session,
    model: type[User] | type[Group],
    resource_type: ResourceType,
    tenant_id: int,
    query: ListQuery,
) -> tuple[int, list[Any]]:
    """(totalResults, rows of the requested page), in a stable order: the sort key, then id.

    A page that is not full tells the total by itself, so the COUNT runs only when it cannot:
    the ``userName eq`` lookup an IdP sends before each create skips it (-0.16 ms of 1.35).
    """
    conditions = [model.tenant_id == tenant_id]
    if query.filter:
        conditions.append(compile_filter(query.filter, resource_type))
    if query.count == 0:
        return _count(db, model, conditions), []
    order = _sort_column(model, resource_type, query.sort_by)
    ordering = [order.desc() if query.descending else order.asc()] if order is not None else []
    if order is None:
        ordering = [model.created_at.asc()]
    statement = (
        select(model)
        .where(*conditions)
        .order_by(*ordering, model.id.asc())
        .offset(query.start_index - 1)
        .limit(query.count)
    )
    if model is User:
        statement = statement.options(selectinload(User.values))
    rows = list(db.scalars(statement))
    skipped = query.start_index - 1
    if len(rows) < query.count and (rows or skipped == 0):
        return skipped + len(rows), rows
    return _count(db, model, conditions), rows


def _count(db: Session, model: Any, conditions: list[Any]) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*conditions)) or 0


_FOLDED = {"user_name": "user_name_key", "display_name": "display_name_key"}


def _sort_column(model: Any, resource_type: ResourceType, sort_by: str | None) -> Any:
    if not sort_by:
        return None
    schema, rest = split_urn_path(sort_by, resource_type)
    top, _, sub = rest.partition(".")
    found = resolve(resource_type, schema.id if schema else None, top) if schema else None
    if found is None:
        raise InvalidValue(f"cannot sort by '{sort_by}': unknown attribute")
    attribute = found[1]
    if sub:
        sub_attribute = attribute.sub(sub)
        attribute = sub_attribute if sub_attribute is not None else attribute
        if sub_attribute is None:
            raise InvalidValue(f"cannot sort by '{sort_by}': unknown sub-attribute")
    if attribute.multi_valued or not attribute.column or not hasattr(model, attribute.column):
        raise InvalidValue(f"cannot sort by '{sort_by}': only single-valued attributes sort")
    return getattr(model, _FOLDED.get(attribute.column, attribute.column))
