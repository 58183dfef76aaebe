"""PATCH paths (RFC 7644 §3.5.2, §3.10): ``[URN:]attr[valFilter].subAttr`` parsed against the
schema, and a path-less PATCH value read as the attribute paths its keys are."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from scim2_filter_parser import ast

from ..errors import BridgeError, InvalidPath, InvalidValue, Mutability
from .filter_syntax import QUOTED, parse
from .filters import evaluate
from .schema import Attribute, ResourceType, Schema, resolve, split_urn_path

_NAME = r"\$?[A-Za-z][A-Za-z0-9_-]*"
_ATTR_PATH = re.compile(rf"({_NAME})(\[)?")
_SUB_ATTR = re.compile(rf"\.({_NAME})")
#: What a value filter is read in: whole quoted strings, brackets, and anything else.
_BRACKET_PIECES = re.compile(rf'{QUOTED}|\]|"|[^"\]]+')


@dataclass(frozen=True)
class Path:
    """``attrPath[valFilter].subAttr`` in the schema's spelling; ``schema_uri`` is set for
    extension attributes only."""

    schema_uri: str | None
    attribute: str
    value_filter: Any | None
    sub_attribute: str | None


def parse_path(text: str, resource_type: ResourceType) -> Path:
    """Parse a path; names match case-insensitively and an un-prefixed extension attribute
    (``manager``) resolves to its extension (idp-quirks C23, C26)."""
    path = parse_known_path(text, resource_type)
    if path is None:
        raise InvalidPath(f"path {text!r} names an unknown attribute or sub-attribute")
    return path


def parse_known_path(text: Any, resource_type: ResourceType) -> Path | None:
    """The path, or ``None`` when it is well-formed but names an unknown (sub-)attribute."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidPath(f"'path' must be a non-empty string, got {text!r}")
    text = text.strip()
    schema, rest = split_urn_path(text, resource_type)
    if schema is None or not rest:
        return None
    name, filter_text, sub_name = _split(rest, text)
    explicit_uri = schema.id if text.lower().startswith("urn:") else None
    found = resolve(resource_type, explicit_uri, name)
    if found is None:
        return None
    owner, attribute = found
    value_filter = None
    if filter_text is not None:
        if not attribute.multi_valued:
            raise InvalidPath(f"path {text!r}: '{attribute.name}' is not multi-valued")
        try:
            value_filter = parse(filter_text)
            evaluate(value_filter, {}, attribute)  # checks sub-attribute names and operands
        except BridgeError as exc:
            raise InvalidPath(f"path {text!r} has an invalid filter: {exc.detail}") from exc
    sub = attribute.sub(sub_name) if sub_name is not None else None
    if sub_name is not None and sub is None:
        return None
    schema_uri = owner.id if owner is not resource_type.schema else None
    return Path(schema_uri, attribute.name, value_filter, sub.name if sub else None)


def _split(rest: str, text: str) -> tuple[str, str | None, str | None]:
    """(attribute, filter text or None, sub-attribute or None) from ``attr[filter].sub``."""
    match = _ATTR_PATH.match(rest)
    if match is None:
        raise InvalidPath(f"path {text!r} is malformed")
    name, position, filter_text = match.group(1), match.end(), None
    if match.group(2):
        close = _closing_bracket(rest, position)
        if close is None:
            raise InvalidPath(f"path {text!r} has an unclosed '['")
        filter_text, position = rest[position:close], close + 1
    sub_match = _SUB_ATTR.fullmatch(rest, position)
    if position < len(rest) and sub_match is None:
        raise InvalidPath(f"path {text!r} is malformed")
    return name, filter_text, sub_match.group(1) if sub_match else None


def _closing_bracket(text: str, start: int) -> int | None:
    """Index of the ``]`` closing a value filter, skipping quoted strings (with their JSON
    escapes, as the filter lexer reads them)."""
    for piece in _BRACKET_PIECES.finditer(text, start):
        if piece.group() == "]":
            return piece.start()
        if piece.group() == '"':
            return None  # a string that is never closed
    return None


def path_attribute(path: Path, resource_type: ResourceType) -> Attribute:
    found = resolve(resource_type, path.schema_uri, path.attribute)
    if found is None:
        raise InvalidPath(f"unknown attribute {path.attribute!r}")
    return found[1]


def is_read_only(path: Path, attribute: Attribute) -> bool:
    sub = attribute.sub(path.sub_attribute) if path.sub_attribute else None
    return attribute.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly")


def check_writable(path: Path, resource_type: ResourceType) -> None:
    """A path that names a read-only attribute is an error (RFC 7644 §3.5.2, §3.12)."""
    if is_read_only(path, path_attribute(path, resource_type)):
        target = f"{path.attribute}.{path.sub_attribute}" if path.sub_attribute else path.attribute
        raise Mutability(f"'{target}' is read-only and cannot be changed")


def expand_pathless(value: Any, resource_type: ResourceType) -> Iterator[tuple[Path, Any]]:
    """Each key of a path-less add/replace value as its own (path, value) (RFC 7644 §3.5.2.1).

    Keys are attribute paths (``name.givenName``, ``urn:…:User:employeeNumber``,
    ``emails[type eq "work"].value``) or an extension URN holding an object (idp-quirks C16).
    Read-only (Okta's ``id`` in a group rename), write-only and unknown keys are ignored,
    as in a POST or PUT body (idp-quirks A6, B20, C10).
    """
    if not isinstance(value, Mapping):
        raise InvalidValue(f"an operation without 'path' needs an object 'value', got {value!r}")
    for key, item in value.items():
        if not isinstance(key, str) or key.lower() == "schemas":
            continue
        extension = extension_named(key, resource_type)
        if extension is None:
            yield from _expand_key(key, item, resource_type)
        elif isinstance(item, Mapping):
            for name, sub_item in item.items():
                yield from _expand_key(f"{extension.id}:{name}", sub_item, resource_type)
        elif item is None:
            for attribute in extension.attributes:
                yield Path(extension.id, attribute.name, None, None), None
        else:
            raise InvalidValue(f"'{key}' must be an object of extension attributes")


def _expand_key(key: str, item: Any, resource_type: ResourceType) -> Iterator[tuple[Path, Any]]:
    path = parse_known_path(key, resource_type)
    if path is None:
        return
    attribute = path_attribute(path, resource_type)
    if not is_read_only(path, attribute) and attribute.returned != "never":
        yield path, item


def extension_named(key: Any, resource_type: ResourceType) -> Schema | None:
    """The extension schema ``key`` names exactly (case-insensitively), if any."""
    if not isinstance(key, str):
        return None
    lowered = key.lower()
    return next((s for s in resource_type.extensions if s.id.lower() == lowered), None)


def equality_terms(node: Any) -> list[list[tuple[str, Any]]] | None:
    """A value filter as ``or``-ed groups of ``and``-ed ``attr eq value`` terms, or ``None``
    when it uses anything else (``not``, other operators, nested paths)."""
    match node:
        case ast.Filter(negated=False, namespace=None, expr=expr):
            return equality_terms(expr)
        case ast.LogExpr(op=op, expr1=left, expr2=right):
            left_terms, right_terms = equality_terms(left), equality_terms(right)
            if left_terms is None or right_terms is None:
                return None
            if op.lower() == "or":
                return left_terms + right_terms
            return [a + b for a in left_terms for b in right_terms]
        case ast.AttrExpr(
            value=op, attr_path=ast.AttrPath(attr_name=str() as name, sub_attr=None, uri=None)
        ) if op.lower() == "eq" and node.comp_value is not None:
            return [[(name, node.comp_value.value)]]
    return None
