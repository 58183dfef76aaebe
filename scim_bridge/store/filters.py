"""SCIM filters (RFC 7644 §3.4.2.2) as SQLAlchemy WHERE clauses over users and groups.

The AST (scim/filter_syntax) is translated here rather than by scim2-filter-parser's SQL
transpiler, which silently drops attributes it cannot map and so widens results: every
attribute must resolve through the schema, or the filter is refused with 400 invalidFilter.

- Shorthands: a complex attribute without a sub-attribute means its ``value`` (``emails co
  "x"``, ``manager eq "id"``), which also covers Entra's malformed ``emails[type eq "work"] eq
  "x"`` (idp-quirks C5).
- Absent values: ``ne`` and ``not (...)`` match resources where the attribute has no value,
  so that ``x ne v`` is exactly ``not (x eq v)`` (SQL alone would drop NULL rows). A
  multi-valued attribute matches when any one of its values does.
- Case: caseExact=false strings compare folded; folded key columns are used where they exist,
  so ``userName eq`` is a lookup in the (tenant, user_name_key) unique index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scim2_filter_parser import ast
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from ..errors import InvalidFilter
from ..models import Group, Membership, User, UserValue
from ..scim.filter_syntax import operands, parse
from ..scim.filters import LIKE_PATTERNS, RELATIONS, comparison_operand, matches
from ..scim.formats import fold
from ..scim.schema import COMMON_META, USER_VALUE_ATTRIBUTES, Attribute, ResourceType, resolve

__all__ = ["compile_filter"]

_MODELS: dict[str, Any] = {"User": User, "Group": Group}
#: Columns holding fold() of another column, for indexed caseExact=false comparisons.
_FOLDED = {
    ("users", "user_name"): "user_name_key",
    ("groups", "display_name"): "display_name_key",
    ("user_values", "value"): "value_key",
}


@dataclass(frozen=True)
class _Column:
    """Where a value is stored, and the column holding its folded form, if there is one."""

    value: Any
    folded: Any = None


def _stored(model: Any, column: str) -> _Column:
    folded = _FOLDED.get((model.__tablename__, column))
    return _Column(getattr(model, column), getattr(model, folded) if folded else None)


@dataclass(frozen=True)
class _Field:
    path: str
    attribute: Attribute
    source: _Column | str  # a str is a constant: meta.resourceType, members.type


@dataclass(frozen=True)
class _Scope:
    """A complex attribute: where its sub-attributes are stored, and how conditions on one of
    its values become a condition on the resource (EXISTS over that value's row)."""

    attribute: Attribute
    path: str
    sources: Mapping[str, _Column | str]
    wrap: Callable[[ColumnElement[bool]], ColumnElement[bool]]


def _scope(model: Any, attribute: Attribute, path: str) -> _Scope:
    rows: Select[Any]
    if not attribute.multi_valued:  # name, manager, meta: columns of the resource's own row
        sources = _columns(model, attribute)
        if attribute is COMMON_META:
            sources["resourceType"] = model.__name__
        return _Scope(attribute, path, sources, _same_row)
    if model is User and attribute.name in USER_VALUE_ATTRIBUTES:
        rows = select(UserValue.id).where(
            UserValue.user_id == User.id, UserValue.attribute == attribute.name
        )
        return _Scope(attribute, path, _columns(UserValue, attribute), _exists(rows, User))
    if model is User and attribute.name == "groups":
        rows = select(Membership.group_id).join(Group, Group.id == Membership.group_id)
        rows = rows.where(Membership.user_id == User.id)
        sources = {
            "value": _Column(Membership.group_id),
            "display": _stored(Group, "display_name"),
            "type": "direct",
        }
        return _Scope(attribute, path, sources, _exists(rows, User))
    if model is Group and attribute.name == "members":
        rows = select(Membership.user_id).join(User, User.id == Membership.user_id)
        rows = rows.where(Membership.group_id == Group.id)
        sources = {
            "value": _Column(Membership.user_id),
            "display": _Column(func.coalesce(User.display_name, User.user_name)),
            "type": "User",
        }
        return _Scope(attribute, path, sources, _exists(rows, Group))
    raise InvalidFilter(f"'{path}' cannot be used in a filter")


def _columns(model: Any, attribute: Attribute) -> dict[str, _Column | str]:
    return {
        sub.name: _stored(model, sub.column)
        for sub in attribute.sub_attributes
        if sub.column is not None
    }


def _same_row(clause: ColumnElement[bool]) -> ColumnElement[bool]:
    return clause


def _exists(rows: Select[Any], outer: Any) -> Callable[[ColumnElement[bool]], ColumnElement[bool]]:
    return lambda clause: rows.where(clause).correlate(outer).exists()


def compile_filter(text: str, resource_type: ResourceType) -> ColumnElement[bool]:
    """A WHERE clause over User or Group; the caller adds the tenant condition. Values reach
    the database only as bound parameters."""
    tree = parse(text)
    try:
        return _Compiler(resource_type).clause(tree)
    except RecursionError:
        raise InvalidFilter("The filter is nested too deeply") from None


class _Compiler:
    def __init__(self, resource_type: ResourceType) -> None:
        self.resource_type = resource_type
        self.model = _MODELS[resource_type.id]

    def clause(self, node: Any, scope: _Scope | None = None) -> ColumnElement[bool]:
        match node:
            case ast.Filter(namespace=None):
                clause = self.clause(node.expr, scope)
                return not_(clause) if node.negated else clause
            case ast.Filter():  # emails[type eq "work"]: some value matches the brackets
                inner = self._value_scope(node.namespace, scope)
                if node.namespace.sub_attr is not None:
                    raise InvalidFilter(f"'{inner.path}[...]' cannot be followed by a name here")
                return inner.wrap(self.clause(node.expr, inner))
            case ast.LogExpr():
                clauses = [self.clause(operand, scope) for operand in operands(node)]
                return and_(*clauses) if node.op.lower() == "and" else or_(*clauses)
            case ast.AttrExpr():
                return self._comparison(node, scope)
        raise InvalidFilter("The filter contains an expression this server does not understand")

    def _comparison(self, node: ast.AttrExpr, scope: _Scope | None) -> ColumnElement[bool]:
        op, path = node.value.lower(), node.attr_path
        value = node.comp_value.value if node.comp_value is not None else None
        if isinstance(path.attr_name, ast.Filter):  # emails[type eq "work"].value eq "x"
            value_path = path.attr_name
            inner = self._value_scope(value_path.namespace, scope)
            sub = value_path.namespace.sub_attr
            target = _sub_field(inner, sub.value if sub else None)
            same_value = and_(self.clause(value_path.expr, inner), _compare(target, op, value))
            return inner.wrap(same_value)
        if scope is not None:  # inside brackets, names are sub-attributes of the scope
            if path.uri or path.sub_attr:
                raise InvalidFilter(f"inside '{scope.path}[...]' name only its sub-attributes")
            return _compare(_sub_field(scope, path.attr_name), op, value)
        attribute = self._resolve(path)
        if attribute.type != "complex":
            if path.sub_attr is not None:
                raise InvalidFilter(f"'{attribute.name}' has no sub-attributes")
            if attribute.column is None:
                raise InvalidFilter(f"'{attribute.name}' cannot be used in a filter")
            column = _stored(self.model, attribute.column)
            return _compare(_Field(attribute.name, attribute, column), op, value)
        inner = _scope(self.model, attribute, attribute.name)
        if path.sub_attr is None and op == "pr":
            return _presence(inner)
        target = _sub_field(inner, path.sub_attr.value if path.sub_attr else None)
        return inner.wrap(_compare(target, op, value))

    def _value_scope(self, namespace: ast.AttrPath, scope: _Scope | None) -> _Scope:
        if scope is not None or not isinstance(namespace.attr_name, str):
            raise InvalidFilter("value filters ('[...]') cannot be nested")
        attribute = self._resolve(namespace)
        if attribute.type != "complex":
            raise InvalidFilter(f"'{attribute.name}' is not complex, so it takes no '[...]' filter")
        return _scope(self.model, attribute, attribute.name)

    def _resolve(self, path: ast.AttrPath) -> Attribute:
        found = resolve(self.resource_type, path.uri, path.attr_name)
        if found is not None:
            return found[1]
        kind = self.resource_type.name
        if path.uri and self.resource_type.schema_for(path.uri) is None:
            raise InvalidFilter(f"Unknown schema URN '{path.uri}' in a {kind} filter")
        raise InvalidFilter(f"Unknown attribute '{path.attr_name}' in a {kind} filter")


def _sub_field(scope: _Scope, name: str | None) -> _Field:
    sub = scope.attribute.sub(name or "value")
    if sub is None and name is None:
        example = f"{scope.path}.{scope.attribute.sub_attributes[0].name}"
        raise InvalidFilter(f"'{scope.path}' is complex: name a sub-attribute, e.g. '{example}'")
    if sub is None:
        raise InvalidFilter(f"'{scope.path}' has no sub-attribute '{name}'")
    source = scope.sources.get(sub.name)
    if source is None:
        raise InvalidFilter(f"'{scope.path}.{sub.name}' cannot be used in a filter")
    return _Field(f"{scope.path}.{sub.name}", sub, source)


def _presence(scope: _Scope) -> ColumnElement[bool]:
    """``emails pr``: the resource has a value; ``name pr``: some sub-attribute is present."""
    if scope.attribute.multi_valued:
        return scope.wrap(true())
    fields = [_sub_field(scope, name) for name in scope.sources]
    return or_(*[_compare(field, "pr", None) for field in fields])


def _compare(target: _Field, op: str, value: Any) -> ColumnElement[bool]:
    if isinstance(target.source, str):
        constant = matches(op, target.source, value, target.attribute, target.path)
        return true() if constant else false()
    column = target.source.value
    if op == "pr":
        present = column.is_not(None)
        textual = target.attribute.type in ("string", "reference", "binary")
        return and_(present, column != "") if textual else present
    operand = comparison_operand(op, value, target.attribute, target.path)
    if op == "ne":
        return not_(_positive(target.source, "eq", operand, target.attribute.case_exact))
    return _positive(target.source, op, operand, target.attribute.case_exact)


def _positive(source: _Column, op: str, operand: Any, case_exact: bool) -> ColumnElement[bool]:
    """The comparison in SQL, false (never NULL) where the value is absent. Case-insensitive
    strings use the folded column when there is one (so the index serves ``userName eq``),
    else lower() on both sides, so that the database's idea of lower case is the only one."""
    column = source.value
    prepare: Callable[[Any], Any] = _unchanged
    if isinstance(operand, str) and not case_exact:
        if source.folded is not None:
            column, prepare = source.folded, fold
        else:
            column, prepare = func.lower(source.value), _lowered
    if op in LIKE_PATTERNS:
        pattern = LIKE_PATTERNS[op].format(_escape_like(operand))
        clause = column.like(prepare(pattern), escape="\\")
    else:
        clause = RELATIONS[op](column, prepare(operand))
    if getattr(source.value.expression, "nullable", True):
        clause = and_(source.value.is_not(None), clause)
    return clause


def _unchanged(value: Any) -> Any:
    return value


def _lowered(value: Any) -> Any:
    return func.lower(literal(value, String))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
