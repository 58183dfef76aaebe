"""Tolerant reading of SCIM resource bodies into one canonical shape.

The canonical shape uses the schema's spelling for every key, keeps extension attributes under
their URN, drops nulls, empty strings, unknown and read-only attributes (RFC 7643 §2.2 / §7 and
what Okta and Entra ID really send), and coerces values to their declared type, so
``"active": "False"`` becomes ``False``. Passwords are write-only and never kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidValue
from .formats import fold
from .schema import MAX_VALUES, USER_VALUE_ATTRIBUTES, Attribute, ResourceType, Schema

_TRUE = {"true"}
_FALSE = {"false"}


def coerce_boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise InvalidValue(f"'{name}' must be a boolean (true or false), got {value!r}")


def coerce(attribute: Attribute, value: Any, where: str | None = None) -> Any:
    """Coerce one attribute value; ``None`` means "absent" (null and "" both clear).

    ``where`` is the attribute's path for messages (``name.givenName``, ``urn:…:department``);
    sub-attributes extend it. Text longer than the attribute's ``max_length`` is refused here,
    the one walk every body and PATCH value takes, so no database sees it.
    """
    if value is None:
        return None
    where = where or attribute.name
    if attribute.multi_valued:
        items = value if isinstance(value, list) else [value]
        check_value_count(attribute, len(items))
        return _coerce_multi(attribute, items, where)
    if attribute.type == "complex":
        return _coerce_complex(attribute, value, where)
    if attribute.type == "boolean":
        if isinstance(value, str) and value.strip() == "":
            return None
        return coerce_boolean(attribute.name, value)
    if isinstance(value, bool | dict | list):
        raise InvalidValue(f"'{attribute.name}' must be a {attribute.type}, got {value!r}")
    text = str(value)
    check_length(attribute, text, where)
    return text if text != "" else None


def check_length(attribute: Attribute, text: str, where: str) -> None:
    """Refuse text longer than the attribute's column holds, on every database alike.

    Its case-folded key (userName, displayName, every multi-valued ``value``) must fit too,
    and folding can lengthen text ("İ" folds to two characters), so non-ASCII text is
    measured folded as well."""
    limit = attribute.max_length
    if limit is None:
        return
    if len(text) > limit:
        raise InvalidValue(f"'{where}' may be at most {limit} characters, got {len(text)}")
    if not text.isascii() and len(fold(text)) > limit:
        raise InvalidValue(
            f"'{where}' may be at most {limit} characters, got {len(fold(text))} "
            "once case-folded"
        )


def check_value_count(attribute: Attribute, count: int) -> None:
    """Refuse more than MAX_VALUES values of a User's multi-valued attribute, before any work
    on them; Group ``members`` has no such limit."""
    if count > MAX_VALUES and attribute.name in USER_VALUE_ATTRIBUTES:
        raise InvalidValue(
            f"'{attribute.name}' may hold at most {MAX_VALUES} values, got {count}"
        )


def _coerce_complex(attribute: Attribute, value: Any, where: str) -> dict[str, Any] | None:
    if isinstance(value, list):
        # The legacy Entra manager form sends [{"$ref": ..., "value": ...}].
        value = value[0] if value else None
        if value is None:
            return None
    if not isinstance(value, Mapping):
        if isinstance(value, bool):
            raise InvalidValue(f"'{attribute.name}' must be an object, got {value!r}")
        # Entra sets the manager as a plain id string; "" clears it.
        value_attr = attribute.sub("value")
        if value_attr is None:
            raise InvalidValue(f"'{attribute.name}' must be an object, got {value!r}")
        value = {"value": value}
    result: dict[str, Any] = {}
    for key, raw in value.items():
        sub = attribute.sub(key)
        if sub is None or sub.mutability == "readOnly" and attribute.mutability != "readOnly":
            continue
        coerced = coerce(sub, raw, f"{where}.{sub.name}")
        if coerced is not None:
            result[sub.name] = coerced
    return result or None


def _coerce_multi(
    attribute: Attribute, items: list[Any], where: str
) -> list[dict[str, Any]] | None:
    entries: list[dict[str, Any]] = []
    seen: set[frozenset[tuple[str, Any]]] = set()  # a set: 100k group members stay linear
    seen_primary = False
    for item in items:
        if item is None:
            continue
        if not isinstance(item, Mapping):
            item = {"value": item}
        entry: dict[str, Any] = {}
        for key, raw in item.items():
            sub = attribute.sub(key)
            if sub is None:
                continue
            coerced = coerce(sub, raw, f"{where}.{sub.name}")
            if coerced is not None:
                entry[sub.name] = coerced
        if not entry or frozenset(entry.items()) in seen:
            continue
        if entry.get("primary") is True:
            if seen_primary:
                entry["primary"] = False
            seen_primary = True
        seen.add(frozenset(entry.items()))
        entries.append(entry)
    return entries or None


def _is_writable(attribute: Attribute) -> bool:
    return attribute.mutability not in ("readOnly",) and attribute.returned != "never"


def normalize(document: Mapping[str, Any], resource_type: ResourceType) -> dict[str, Any]:
    """Read a request body into the canonical shape (see module docstring)."""
    if not isinstance(document, Mapping):
        raise InvalidValue("the request body must be a JSON object")
    result: dict[str, Any] = {}
    for key, raw in document.items():
        if not isinstance(key, str) or key.lower() == "schemas":
            continue
        extension = _extension(resource_type, key)
        if extension is not None:
            if isinstance(raw, Mapping):
                _merge_extension(result, extension, raw)
            continue
        schema, attribute = _lookup(resource_type, key)
        if attribute is None or schema is None or not _is_writable(attribute):
            continue
        core = schema is resource_type.schema
        value = coerce(attribute, raw, None if core else f"{schema.id}:{attribute.name}")
        if value is None:
            continue
        if core:
            result[attribute.name] = value
        else:
            result.setdefault(schema.id, {})[attribute.name] = value
    return result


def _extension(resource_type: ResourceType, key: str) -> Schema | None:
    lowered = key.lower()
    for schema in resource_type.extensions:
        if schema.id.lower() == lowered:
            return schema
    return None


def _lookup(resource_type: ResourceType, key: str) -> tuple[Schema | None, Attribute | None]:
    for schema in resource_type.schemas:
        attribute = schema.attribute(key)
        if attribute is not None:
            return schema, attribute
    return None, None


def _merge_extension(result: dict[str, Any], schema: Schema, raw: Mapping[str, Any]) -> None:
    block: dict[str, Any] = {}
    for key, value in raw.items():
        attribute = schema.attribute(key) if isinstance(key, str) else None
        if attribute is None or not _is_writable(attribute):
            continue
        coerced = coerce(attribute, value, f"{schema.id}:{attribute.name}")
        if coerced is not None:
            block[attribute.name] = coerced
    if block:
        result[schema.id] = block
