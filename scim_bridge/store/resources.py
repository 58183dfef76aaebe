"""Mapping between stored rows and SCIM JSON (RFC 7643 §4), driven by the schema columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..models import Group, User, UserValue
from ..scim.formats import etag, fold, iso
from ..scim.schema import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE,
    ENTERPRISE_USER,
    USER,
    USER_VALUE_ATTRIBUTES,
    Attribute,
)

# Single-valued User attributes stored as columns, with the column name.
_USER_SCALARS = tuple(
    (a.name, a.column)
    for a in USER.attributes
    if not a.multi_valued and a.type != "complex" and a.column and a.name != "id"
)
_NAME = USER.attribute("name")
_ENTERPRISE_SCALARS = tuple(
    (a.name, a.column) for a in ENTERPRISE.attributes if a.type != "complex" and a.column
)
_VALUE_SUBS: dict[str, Attribute] = {a.name: a for a in USER.attributes if a.multi_valued}
#: (sub-attribute, column) of each value-row attribute.
_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    name: tuple((sub.name, sub.column) for sub in attribute.sub_attributes if sub.column)
    for name, attribute in _VALUE_SUBS.items()
}


def user_to_document(
    user: User, groups: Iterable[tuple[str, str]], base_url: str
) -> dict[str, Any]:
    """The full SCIM representation; ``groups`` is (group id, displayName) pairs."""
    document: dict[str, Any] = {"schemas": [CORE_USER], "id": user.id}
    for name, column in _USER_SCALARS:
        value = getattr(user, column)
        if value is not None:
            document[name] = value
    assert _NAME is not None
    name_block = {
        sub.name: getattr(user, sub.column)
        for sub in _NAME.sub_attributes
        if sub.column and getattr(user, sub.column) is not None
    }
    if name_block:
        document["name"] = name_block
    for entry in user.values:
        document.setdefault(entry.attribute, []).append(_value_to_json(entry))
    group_refs = [
        {"value": group_id, "display": display, "$ref": f"{base_url}/Groups/{group_id}",
         "type": "direct"}
        for group_id, display in groups
    ]
    if group_refs:
        document["groups"] = group_refs
    enterprise = {
        name: getattr(user, column)
        for name, column in _ENTERPRISE_SCALARS
        if getattr(user, column) is not None
    }
    if user.manager_id:
        enterprise["manager"] = {
            "value": user.manager_id,
            "$ref": f"{base_url}/Users/{user.manager_id}",
        }
    document["schemas"].append(ENTERPRISE_USER)
    if enterprise:
        document[ENTERPRISE_USER] = enterprise
    document["meta"] = _meta("User", user, f"{base_url}/Users/{user.id}")
    return document


def _value_to_json(entry: UserValue) -> dict[str, Any]:
    attribute = _VALUE_SUBS[entry.attribute]
    return {
        sub.name: getattr(entry, sub.column)
        for sub in attribute.sub_attributes
        if sub.column and getattr(entry, sub.column) is not None
    }


def _meta(resource_type: str, row: User | Group, location: str) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "created": iso(row.created_at),
        "lastModified": iso(row.last_modified),
        "location": location,
        "version": etag(row.version),
    }


def user_columns(document: Mapping[str, Any], *, keep_active: bool = True) -> dict[str, Any]:
    """The single-valued columns a canonical document sets: every writable attribute it lacks
    is cleared.

    ``active`` is the exception when ``keep_active``: a PUT body without it keeps the current
    state, so it never deactivates or reactivates anyone by accident. A PATCH that removes
    ``active`` leaves it unassigned, which does not deny access.
    """
    columns: dict[str, Any] = {}
    for name, column in _USER_SCALARS:
        if name != "active":
            columns[column] = document.get(name)
        elif "active" in document:
            columns[column] = bool(document["active"])
        elif not keep_active:
            columns[column] = None
    columns["user_name_key"] = fold(columns["user_name"])
    assert _NAME is not None
    name_block = document.get("name") or {}
    for sub in _NAME.sub_attributes:
        if sub.column:
            columns[sub.column] = name_block.get(sub.name)
    enterprise = document.get(ENTERPRISE_USER) or {}
    for name, column in _ENTERPRISE_SCALARS:
        columns[column] = enterprise.get(name)
    columns["manager_id"] = (enterprise.get("manager") or {}).get("value")
    return columns


def apply_user_document(
    user: User, document: Mapping[str, Any], *, keep_active: bool = True
) -> None:
    """Write a canonical document onto the row (see ``user_columns``) and its value rows."""
    for column, value in user_columns(document, keep_active=keep_active).items():
        setattr(user, column, value)
    _write_values(user, document)


#: Every column of a value row but its key, unset: one shape for a multi-row INSERT.
_EMPTY_VALUE_ROW = {
    column.key: None for column in UserValue.__table__.columns if not column.primary_key
}


def value_rows(document: Mapping[str, Any], user_id: str) -> list[dict[str, Any]]:
    """The value rows of a new user, as column dicts for one INSERT."""
    rows = []
    for attribute in USER_VALUE_ATTRIBUTES:
        for position, entry in enumerate(document.get(attribute) or ()):
            row: dict[str, Any] = {
                **_EMPTY_VALUE_ROW, "user_id": user_id, "attribute": attribute, "position": position
            }
            for name, column in _COLUMNS[attribute]:
                row[column] = entry.get(name)
            row["value_key"] = _value_key(row["value"])
            rows.append(row)
    return rows


def _value_key(value: str | None) -> str | None:
    return fold(value) if value is not None else None


def _write_values(user: User, document: Mapping[str, Any]) -> None:
    """Make the value rows say what ``document`` says, touching only the rows that differ:
    an unchanged element keeps its row (at most its position changes), a changed one updates
    a row that no longer matches, and only what is left over is inserted or deleted. Adding
    one email to a user with a hundred writes one row, not a hundred and one."""
    current: dict[str, list[UserValue]] = {}
    for row in user.values:
        current.setdefault(row.attribute, []).append(row)
    # Assigning the collection diffs it by identity: rows left out are deleted, new inserted.
    user.values = [
        row
        for attribute in USER_VALUE_ATTRIBUTES
        for row in _rows_for(attribute, current.get(attribute, []), document.get(attribute))
    ]


def _rows_for(
    attribute: str, old_rows: list[UserValue], entries: list[Mapping[str, Any]] | None
) -> list[UserValue]:
    """The rows of one attribute in the order of ``entries``, reusing ``old_rows``: first
    those that match an element exactly, then the others in order for the changed elements."""
    columns = _COLUMNS[attribute]
    unmatched: dict[tuple[Any, ...], list[UserValue]] = {}
    for row in reversed(old_rows):  # so that pop() hands out the earliest row
        unmatched.setdefault(tuple(getattr(row, column) for _, column in columns), []).append(row)
    matched: list[UserValue | None] = []
    for entry in entries or []:
        same = unmatched.get(tuple(entry.get(name) for name, _ in columns))
        matched.append(same.pop() if same else None)
    reused = {id(row) for row in matched if row is not None}
    spare = iter([row for row in old_rows if id(row) not in reused])
    rows = []
    for position, (kept, entry) in enumerate(zip(matched, entries or [], strict=True)):
        row = kept or _filled(next(spare, None) or UserValue(attribute=attribute), entry)
        if row.position != position:
            row.position = position
        rows.append(row)
    return rows


def _filled(row: UserValue, entry: Mapping[str, Any]) -> UserValue:
    """Set a row's columns from one element, assigning only what differs."""
    for name, column in _COLUMNS[row.attribute]:
        if getattr(row, column) != entry.get(name):
            setattr(row, column, entry.get(name))
    value_key = _value_key(row.value)
    if row.value_key != value_key:
        row.value_key = value_key
    return row


def user_to_canonical(user: User) -> dict[str, Any]:
    """The writable part of a user, in canonical form: what PATCH operates on."""
    document = user_to_document(user, (), "")
    for key in ("schemas", "id", "meta", "groups"):
        document.pop(key, None)
    enterprise = document.get(ENTERPRISE_USER)
    if enterprise and "manager" in enterprise:
        enterprise["manager"] = {"value": enterprise["manager"]["value"]}
    return document


def group_to_document(
    group: Group, members: Iterable[tuple[str, str | None]] | None, base_url: str
) -> dict[str, Any]:
    """``members`` is (user id, display) pairs, or ``None`` when they were not asked for."""
    document: dict[str, Any] = {
        "schemas": [CORE_GROUP],
        "id": group.id,
        "displayName": group.display_name,
    }
    if group.external_id is not None:
        document["externalId"] = group.external_id
    if members is not None:
        document["members"] = [
            _member_json(user_id, display, base_url) for user_id, display in members
        ]
    document["meta"] = _meta("Group", group, f"{base_url}/Groups/{group.id}")
    return document


def _member_json(user_id: str, display: str | None, base_url: str) -> dict[str, Any]:
    member: dict[str, Any] = {"value": user_id, "$ref": f"{base_url}/Users/{user_id}",
                              "type": "User"}
    if display is not None:
        member["display"] = display
    return member
