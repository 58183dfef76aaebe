"""SCIM PATCH (RFC 7644 §3.5.2): read a PatchOp body into operations, apply them to a canonical
document, and split group-membership changes off for the service to run in SQL.

Tolerant of every shape Okta and Entra ID send (idp-quirks A9–A12, B13, B20–B21, C10–C30):
any-case op names and keys, path-less values keyed by attribute paths, ``"False"`` strings,
``""``/null as "clear", add on single-valued attributes, and value-filter paths that create
the element they do not find (Entra, C18).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidFilter, InvalidPath, InvalidSyntax, InvalidValue, Mutability, NoTarget
from .documents import check_length, check_value_count, coerce
from .filters import evaluate
from .patch_paths import (
    Path,
    check_writable,
    equality_terms,
    expand_pathless,
    extension_named,
    parse_path,
    path_attribute,
)
from .schema import GROUP, PATCH_OP, Attribute, ResourceType, Schema

__all__ = [
    "MAX_OPERATIONS",
    "MemberChange",
    "Operation",
    "Path",
    "apply_operations",
    "parse_patch_request",
    "parse_path",
    "split_group_operations",
]

OPS = ("add", "remove", "replace")
MAX_OPERATIONS = 1000
#: Sub-attributes that only label an element: one holding nothing else is dropped.
_LABELS = frozenset({"type", "primary", "display"})


@dataclass(frozen=True)
class Operation:
    op: str
    path: Path | None
    value: Any


@dataclass(frozen=True)
class MemberChange:
    """A group-membership delta the service executes in SQL."""

    kind: str
    user_ids: tuple[str, ...]
    #: (user id, display) for members the IdP named with a ``display``; stored as sent.
    displays: tuple[tuple[str, str], ...] = ()


# -- reading the request ----------------------------------------------------------------------


def parse_patch_request(body: Any, resource_type: ResourceType) -> list[Operation]:
    """Read a PatchOp body; every path and path-less key is checked before anything changes."""
    if not isinstance(body, Mapping):
        raise InvalidSyntax("the PATCH body must be a JSON object with 'Operations'")
    fields = _lower_keys(body)
    _check_schemas(fields.get("schemas"))
    raw_operations = fields.get("operations")
    if not isinstance(raw_operations, list):
        raise InvalidSyntax("the PATCH body needs 'Operations', a list of operations")
    if len(raw_operations) > MAX_OPERATIONS:
        raise InvalidValue(
            f"a PATCH request may hold at most {MAX_OPERATIONS} operations, "
            f"got {len(raw_operations)}"
        )
    return [
        operation
        for index, raw in enumerate(raw_operations)
        for operation in _parse_operation(index, raw, resource_type)
    ]


def _check_schemas(schemas: Any) -> None:
    """A missing or empty ``schemas`` is accepted (some clients omit it); one that names
    other message types means the body is not a PatchOp at all, and is rejected."""
    if schemas is None or schemas == []:
        return
    listed = schemas if isinstance(schemas, list) else [schemas]
    if not any(isinstance(uri, str) and uri.lower() == PATCH_OP.lower() for uri in listed):
        raise InvalidSyntax(f"'schemas' must contain {PATCH_OP!r}, got {schemas!r}")


def _parse_operation(index: int, raw: Any, resource_type: ResourceType) -> list[Operation]:
    where = f"Operations[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidSyntax(f"{where} must be an object with 'op', 'path' and 'value'")
    fields = _lower_keys(raw)
    op = fields.get("op")
    if not isinstance(op, str) or op.lower() not in OPS:
        raise InvalidSyntax(f"{where}.op must be one of add, remove, replace; got {op!r}")
    op = op.lower()
    raw_path, value = fields.get("path"), fields.get("value")
    if isinstance(raw_path, str):
        raw_path = raw_path.strip() or None  # "path": "" is read as no path
    extension = extension_named(raw_path, resource_type)
    if extension is not None:
        return _extension_operations(where, op, extension, value, resource_type)
    if raw_path is None:
        if op == "remove":
            raise NoTarget(f"{where}: 'remove' needs a 'path' (RFC 7644 §3.5.2.2)")
        if not isinstance(value, Mapping):
            raise InvalidValue(
                f"{where}: '{op}' without 'path' needs an object 'value' of attributes"
            )
        _check_value_counts(expand_pathless(value, resource_type), resource_type)
        return [Operation(op, None, value)]
    path = parse_path(raw_path, resource_type)
    check_writable(path, resource_type)
    if op != "remove" and "value" not in fields:
        raise InvalidValue(f"{where}: '{op}' needs a 'value'")
    _check_value_counts([(path, value)], resource_type)
    return [Operation(op, path, value)]


def _check_value_counts(pairs: Iterable[tuple[Path, Any]], resource_type: ResourceType) -> None:
    """An operation listing more values than an attribute may hold is refused as it is read,
    before the user is locked (the PATCH result is checked again as it is applied)."""
    for path, value in pairs:
        attribute = path_attribute(path, resource_type)
        if attribute.multi_valued and isinstance(value, list):
            check_value_count(attribute, len(value))


def _extension_operations(
    where: str, op: str, extension: Schema, value: Any, resource_type: ResourceType
) -> list[Operation]:
    """A path naming a whole extension (``urn:…:enterprise:2.0:User``): add and replace merge
    its attributes like a path-less value keyed by the URN; remove clears each of them."""
    if op == "remove":
        return [
            Operation("remove", Path(extension.id, attribute.name, None, None), None)
            for attribute in extension.attributes
        ]
    if value is not None and not isinstance(value, Mapping):
        raise InvalidValue(f"{where}: '{extension.id}' needs an object of its attributes")
    operation = Operation(op, None, {extension.id: value})
    _check_value_counts(expand_pathless(operation.value, resource_type), resource_type)
    return [operation]


def _lower_keys(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in mapping.items() if isinstance(key, str)}


# -- applying operations ----------------------------------------------------------------------


def apply_operations(
    document: dict[str, Any], operations: Sequence[Operation], resource_type: ResourceType
) -> dict[str, Any]:
    """Apply ``operations`` in order to a copy of the canonical ``document``."""
    result = copy.deepcopy(document)
    for operation in operations:
        if operation.path is not None:
            _apply(result, operation.op, operation.path, operation.value, resource_type)
        elif operation.op == "remove":
            raise NoTarget("'remove' needs a 'path' (RFC 7644 §3.5.2.2)")
        else:
            for path, value in expand_pathless(operation.value, resource_type):
                _apply(result, operation.op, path, value, resource_type)
    return result


def _apply(
    document: dict[str, Any], op: str, path: Path, value: Any, resource_type: ResourceType
) -> None:
    check_writable(path, resource_type)
    attribute = path_attribute(path, resource_type)
    if attribute.returned == "never":
        return  # write-only (password): never stored; Okta's password sync must not fail
    container = document.setdefault(path.schema_uri, {}) if path.schema_uri else document
    was_present = attribute.name in container
    where = f"{path.schema_uri}:{attribute.name}" if path.schema_uri else attribute.name
    if attribute.multi_valued:  # core attributes only: messages name them by their name
        _apply_multi(container, op, path, attribute, value)
    elif path.sub_attribute is not None:
        sub = attribute.sub(path.sub_attribute)
        assert sub is not None
        block = dict(container.get(attribute.name) or {})
        _set(block, sub, None if op == "remove" else value, f"{where}.{sub.name}")
        _set(container, attribute, block, where)
    elif op == "remove":
        container.pop(attribute.name, None)
    elif attribute.type == "complex" and isinstance(value, Mapping):
        _merge_complex(container, attribute, value, where)
    else:
        _set(container, attribute, value, where)  # add on a single-valued one is a replace
    if path.schema_uri and not container:
        document.pop(path.schema_uri)
    if attribute.required and was_present and attribute.name not in container:
        raise Mutability(f"'{attribute.name}' is required and cannot be removed")


def _set(
    container: dict[str, Any], attribute: Attribute, value: Any, where: str | None = None
) -> None:
    """Store the coerced value; null, "" and empty objects clear (idp-quirks C20).
    ``where`` names the attribute in messages (see documents.coerce)."""
    coerced = coerce(attribute, value, where)
    if coerced is None:
        container.pop(attribute.name, None)
    else:
        container[attribute.name] = coerced


def _merge_complex(
    container: dict[str, Any], attribute: Attribute, value: Mapping, where: str
) -> None:
    """Given sub-attributes replace, the others stay (RFC 7644 §3.5.2.1, §3.5.2.3)."""
    block = dict(container.get(attribute.name) or {})
    for key, raw in value.items():
        sub = attribute.sub(key) if isinstance(key, str) else None
        if sub is not None and sub.mutability != "readOnly":
            _set(block, sub, raw, f"{where}.{sub.name}")
    _set(container, attribute, block, where)


def _apply_multi(
    container: dict[str, Any], op: str, path: Path, attribute: Attribute, value: Any
) -> None:
    items = [dict(item) for item in container.get(attribute.name) or []]
    touched: list[dict[str, Any]] = []
    if path.value_filter is None and path.sub_attribute is None:
        if op == "remove":
            items = [] if value is None else _without(items, value, attribute)
        else:
            new_items = coerce(attribute, value) or []
            items, touched = (
                (new_items, new_items) if op == "replace" else _appended(items, new_items)
            )
    else:
        selected = [
            item
            for item in items
            if path.value_filter is None or evaluate(path.value_filter, item, attribute)
        ]
        if op == "remove" and path.sub_attribute is None:
            doomed = {_key(item) for item in selected}
            items = [item for item in items if _key(item) not in doomed]
        elif selected or op == "remove":
            touched = _update_elements(selected, op, path, attribute, value)
        elif value not in (None, ""):
            created = _created_element(path, attribute, value)
            if created is None:
                raise NoTarget(f"no '{attribute.name}' element matches the path's filter")
            touched = [created]
            items.append(created)
    _keep_one_primary(items, touched)
    _set(container, attribute, [item for item in items if set(item) - _LABELS])


def _update_elements(
    selected: list[dict[str, Any]], op: str, path: Path, attribute: Attribute, value: Any
) -> list[dict[str, Any]]:
    """Change the elements a filter selected, in place: their sub-attribute, or the whole
    element (replaced, keeping the filter's ``eq`` labels, or merged for add)."""
    if path.sub_attribute is not None:
        sub = attribute.sub(path.sub_attribute)
        assert sub is not None
        for item in selected:
            _set(item, sub, None if op == "remove" else value, f"{attribute.name}.{sub.name}")
        return selected
    replacement = coerce(attribute, [value])
    labels = _filter_labels(path, attribute) or {}
    for item in selected:
        if op == "replace":
            item.clear()  # replaced by null, the element is left empty and dropped
            item.update({**labels, **replacement[0]} if replacement else {})
        elif replacement:
            item.update(replacement[0])
    return selected


def _created_element(path: Path, attribute: Attribute, value: Any) -> dict[str, Any] | None:
    """Entra's create-on-miss (idp-quirks C18): the filter's ``eq`` terms plus the value."""
    labels = _filter_labels(path, attribute)
    if labels is None:
        return None
    if path.sub_attribute is not None:
        sub = attribute.sub(path.sub_attribute)
        assert sub is not None
        coerced = coerce(sub, value, f"{attribute.name}.{sub.name}")
        element = {**labels, sub.name: coerced} if coerced is not None else {}
    else:
        entries = coerce(attribute, [value]) or [{}]
        element = {**labels, **entries[0]}
    return element if set(element) - _LABELS else None


def _filter_labels(path: Path, attribute: Attribute) -> dict[str, Any] | None:
    """``type eq "work" and …`` as canonical sub-attribute values, or ``None`` when the
    filter is anything but ``eq`` terms joined by ``and``; no filter means no labels."""
    if path.value_filter is None:
        return {}
    terms = equality_terms(path.value_filter)
    if terms is None or len(terms) != 1:
        return None
    labels: dict[str, Any] = {}
    for name, raw in terms[0]:
        sub = attribute.sub(name)
        if sub is None:
            return None
        labels[sub.name] = coerce(sub, raw, f"{attribute.name}.{sub.name}")
    return labels


def _appended(items: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[list, list]:
    """Add appends (RFC 7644 §3.5.2.1); an entry with the value and type of one already
    there updates it instead (Okta: never repeat a value+type pair, idp-quirks B16).
    Returns (all elements, the added or updated ones). One dict lookup per entry."""
    first_by_identity: dict[Any, dict[str, Any]] = {}
    for item in items:
        first_by_identity.setdefault(_identity(item), item)
    touched = []
    for entry in new:
        same = first_by_identity.get(_identity(entry))
        if same is None:
            items.append(entry)
            first_by_identity[_identity(entry)] = same = entry
        same.update(entry)  # an identity is value+type or the whole entry: update keeps it
        touched.append(same)
    return items, touched


def _identity(item: dict[str, Any]) -> Any:
    """What makes two elements the same one: value and type, or (without a value, as in
    ``addresses``) every sub-attribute."""
    if "value" in item:
        return ("value", item["value"], item.get("type"))
    return ("whole", _key(item))


def _key(item: dict[str, Any]) -> frozenset[tuple[str, Any]]:
    """An element as a hashable set of its (sub-attribute, value) pairs, for equality."""
    return frozenset(item.items())


def _without(items: list[dict[str, Any]], value: Any, attribute: Attribute) -> list[dict]:
    """Remove exactly the listed elements (Entra's ``remove members`` with a value list,
    idp-quirks C29): by ``value`` when given, else by equality. Never everything."""
    doomed = []
    for listed in value if isinstance(value, list) else [value]:
        entries = coerce(attribute, [listed])
        if not entries:
            raise InvalidValue(f"each '{attribute.name}' element to remove must name its value")
        doomed.append(entries[0])
    values = {entry["value"] for entry in doomed if "value" in entry}
    doomed_keys = {_key(entry) for entry in doomed}
    return [
        item for item in items if item.get("value") not in values and _key(item) not in doomed_keys
    ]


def _keep_one_primary(items: list[dict[str, Any]], touched: list[dict[str, Any]]) -> None:
    """A new or changed primary element takes primary from the others (RFC 7643 §2.4)."""
    if any(item.get("primary") is True for item in touched):
        touched_ids = {id(item) for item in touched}
        for item in items:
            if item.get("primary") is True and id(item) not in touched_ids:
                item["primary"] = False


# -- group membership -------------------------------------------------------------------------


def _member_sub(name: str) -> Attribute:
    members = GROUP.attribute("members")
    sub = members.sub(name) if members else None
    assert sub is not None
    return sub


#: Their limits apply to member changes too, which never pass through coerce.
_MEMBER_VALUE, _MEMBER_DISPLAY = _member_sub("value"), _member_sub("display")


def split_group_operations(operations: Sequence[Operation]) -> list[Operation | MemberChange]:
    """Turn every operation on ``members`` into a MemberChange, in order; others stay."""
    result: list[Operation | MemberChange] = []
    for operation in operations:
        path = operation.path
        if path is None and isinstance(operation.value, Mapping):
            keys = [key for key in operation.value if str(key).lower() == "members"]
            for key in keys:
                result.append(_listed_members(operation.op, operation.value[key]))
            rest = {k: v for k, v in operation.value.items() if k not in keys}
            if rest or not keys:
                result.append(Operation(operation.op, None, rest))
        elif path is not None and path.schema_uri is None and path.attribute == "members":
            result.append(_member_change(operation, path))
        else:
            result.append(operation)
    return result


def _member_change(operation: Operation, path: Path) -> MemberChange:
    if path.sub_attribute is not None:
        raise InvalidPath("a member path cannot name a sub-attribute; use 'members'")
    if path.value_filter is None:
        if operation.op == "remove" and operation.value is None:
            return MemberChange("remove_all", ())
        return _listed_members(operation.op, operation.value)
    if operation.op != "remove":
        raise InvalidPath(f"'{operation.op}' takes path 'members' with a list of members")
    terms = equality_terms(path.value_filter) or []
    user_ids = [
        term[0][1]
        for term in terms
        if len(term) == 1 and term[0][0].lower() == "value" and isinstance(term[0][1], str)
    ]
    if not terms or len(user_ids) != len(terms):
        raise InvalidFilter('a member filter must be value eq "<id>" terms joined by or')
    return MemberChange("remove", _deduped(user_ids))


def _listed_members(op: str, value: Any) -> MemberChange:
    """A change from member entries ``{"value": id, "display"?, "$ref"?, "type"?}``."""
    entries = [] if value is None else value if isinstance(value, list) else [value]
    user_ids = []
    displays = []
    for entry in entries:
        fields = _lower_keys(entry) if isinstance(entry, Mapping) else {"value": entry}
        member_id = fields.get("value")
        if not isinstance(member_id, str) or not member_id.strip():
            raise InvalidValue(f"each member needs a 'value' with the user id, got {entry!r}")
        check_length(_MEMBER_VALUE, member_id.strip(), "members.value")
        user_ids.append(member_id.strip())
        if isinstance(fields.get("display"), str) and fields["display"]:
            check_length(_MEMBER_DISPLAY, fields["display"], "members.display")
            displays.append((member_id.strip(), fields["display"]))
    return MemberChange(op, _deduped(user_ids), tuple(displays))


def _deduped(user_ids: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(user_ids))
