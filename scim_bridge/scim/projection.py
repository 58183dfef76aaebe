"""``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5) applied to a rendered resource."""

from __future__ import annotations

from typing import Any

from .schema import ResourceType, split_urn_path

# Returned whatever the request asks (RFC 7643 §7 "returned: always").
_ALWAYS = {"id", "schemas"}


def parse_attribute_list(raw: str | list[str] | None) -> list[str]:
    if not raw:
        return []
    items = raw if isinstance(raw, list) else raw.split(",")
    return [item.strip() for item in items if isinstance(item, str) and item.strip()]


def _key(path: str, resource_type: ResourceType) -> tuple[str, str, str | None]:
    """(schema id, top attribute, sub attribute), all lower-cased."""
    schema, rest = split_urn_path(path, resource_type)
    schema_id = (schema.id if schema else path).lower()
    top, _, sub = rest.partition(".")
    return schema_id, top.lower(), (sub.lower() or None)


def wants(attribute: str, attributes: list[str], excluded: list[str], rt: ResourceType) -> bool:
    """Whether ``attribute`` (a core top-level name like ``members``) would be returned."""
    target = (rt.schema.id.lower(), attribute.lower())
    if attributes:
        return any(_key(a, rt)[:2] == target for a in attributes)
    return not any(_key(e, rt)[:2] == target and _key(e, rt)[2] is None for e in excluded)


def project(
    document: dict[str, Any], attributes: list[str], excluded: list[str], rt: ResourceType
) -> dict[str, Any]:
    if not attributes and not excluded:
        return document
    core = rt.schema.id.lower()
    extension_keys = {s.id.lower(): s.id for s in rt.extensions}
    if attributes:
        keep: dict[tuple[str, str], set[str] | None] = {}
        for path in attributes:
            schema_id, top, sub = _key(path, rt)
            if top == "":
                keep[(schema_id, "")] = None
                continue
            current = keep.get((schema_id, top), set())
            keep[(schema_id, top)] = None if sub is None or current is None else current | {sub}
        result: dict[str, Any] = {}
        for key, value in document.items():
            lowered = key.lower()
            if key in _ALWAYS:
                result[key] = value
            elif lowered in extension_keys and isinstance(value, dict):
                if (lowered, "") in keep:
                    result[key] = value
                    continue
                block = _select(value, lowered, keep)
                if block:
                    result[key] = block
            elif (core, lowered) in keep:
                result[key] = _narrow(value, keep[(core, lowered)])
        return result
    drop: dict[tuple[str, str], set[str] | None] = {}
    for path in excluded:
        schema_id, top, sub = _key(path, rt)
        current = drop.get((schema_id, top), set())
        drop[(schema_id, top)] = None if sub is None or current is None else current | {sub}
    result = {}
    for key, value in document.items():
        lowered = key.lower()
        if key in _ALWAYS:
            result[key] = value
        elif lowered in extension_keys and isinstance(value, dict):
            block = {
                k: _without(v, drop[(lowered, k.lower())]) if (lowered, k.lower()) in drop else v
                for k, v in value.items()
                if drop.get((lowered, k.lower()), set()) is not None
            }
            if block:
                result[key] = block
        elif (core, lowered) in drop:
            subs = drop[(core, lowered)]
            if subs is not None:
                result[key] = _without(value, subs)
        else:
            result[key] = value
    return result


def _select(block: dict[str, Any], schema_id: str, keep: dict[tuple[str, str], Any]) -> dict:
    return {
        k: _narrow(v, keep[(schema_id, k.lower())])
        for k, v in block.items()
        if (schema_id, k.lower()) in keep
    }


def _narrow(value: Any, subs: set[str] | None) -> Any:
    if subs is None:
        return value
    if isinstance(value, list):
        return [{k: v for k, v in item.items() if k.lower() in subs} for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() in subs}
    return value


def _without(value: Any, subs: set[str] | None) -> Any:
    if subs is None:
        return value
    if isinstance(value, list):
        return [{k: v for k, v in item.items() if k.lower() not in subs} for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() not in subs}
    return value
