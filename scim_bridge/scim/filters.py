"""What SCIM filter comparisons mean (RFC 7644 §3.4.2.2), and the in-memory matching of value
filters that PATCH paths such as ``emails[type eq "work"].value`` need. The SQL twin of these
rules is store/filters.py; both share the operand checks and relations defined here.

An absent value matches only ``ne`` (so ``x ne v`` is exactly ``not (x eq v)``), and
caseExact=false strings compare folded.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from typing import Any

from scim2_filter_parser import ast

from ..errors import InvalidFilter
from .filter_syntax import operands
from .formats import fold
from .schema import Attribute

__all__ = ["LIKE_PATTERNS", "RELATIONS", "comparison_operand", "evaluate", "matches"]

_ORDERING = frozenset({"gt", "ge", "lt", "le"})
LIKE_PATTERNS = {"co": "%{}%", "sw": "{}%", "ew": "%{}"}
#: Each operator as a function of (attribute value, comparison value); SQL uses the ordering ones.
RELATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "co": operator.contains,
    "sw": str.startswith,
    "ew": str.endswith,
}


# -- Values: shared by SQL and in-memory matching ------------------------------------------


def comparison_operand(op: str, value: Any, attribute: Attribute, path: str) -> Any:
    """Check the operator against the attribute's type (§3.4.2.2) and turn the literal into
    what is compared: a bool, an aware datetime or a string."""
    if attribute.type == "boolean":
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"'{op}' cannot compare the boolean '{path}'; use eq, ne or pr")
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InvalidFilter(f"'{path}' is a boolean: compare it with true or false, not {value!r}")
    if value is None:
        raise InvalidFilter(f"null is not a comparison value; use '{path} pr' or 'not ({path} pr)'")
    if isinstance(value, bool):
        raise InvalidFilter(f"'{path}' is not a boolean; compare it with a quoted string")
    if attribute.type == "dateTime":
        if op in LIKE_PATTERNS:
            raise InvalidFilter(f"'{op}' cannot compare the dateTime '{path}'; use eq, gt, lt, ...")
        return _timestamp(value, path)
    if attribute.type == "binary" and op in _ORDERING:
        raise InvalidFilter(f"'{op}' cannot compare the binary '{path}'")
    return value


def _timestamp(value: str, path: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFilter(
            f"'{path}' takes an ISO 8601 date-time such as \"2024-01-31T12:00:00Z\", not {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def matches(op: str, actual: Any, value: Any, attribute: Attribute, path: str) -> bool:
    """The in-memory twin of store.filters._compare()."""
    if op == "pr":
        return actual not in (None, "", [], {})
    expected = comparison_operand(op, value, attribute, path)
    if actual is None:
        return op == "ne"
    if isinstance(expected, bool):
        actual = actual if isinstance(actual, bool) else str(actual).strip().lower() == "true"
    elif isinstance(expected, dt.datetime):
        try:
            actual = _timestamp(actual, path) if isinstance(actual, str) else actual
        except InvalidFilter:  # a stored value that is no date matches nothing
            return op == "ne"
    else:
        actual = str(actual)
        if not attribute.case_exact:
            actual, expected = fold(actual), fold(expected)
    return bool(RELATIONS[op](actual, expected))


def evaluate(node: Any, element: Mapping[str, Any], attribute: Attribute) -> bool:
    """Whether one value of the multi-valued ``attribute`` (a dict keyed by canonical
    sub-attribute names) matches a value filter such as ``type eq "work"``, honouring each
    sub-attribute's caseExact. Every comparison is checked, even where the result is known."""
    match node:
        case ast.Filter(namespace=None):
            matched = evaluate(node.expr, element, attribute)
            return not matched if node.negated else matched
        case ast.Filter():  # the whole value path, emails[...]: its namespace is `attribute`
            return evaluate(node.expr, element, attribute)
        case ast.LogExpr():
            results = [evaluate(operand, element, attribute) for operand in operands(node)]
            return all(results) if node.op.lower() == "and" else any(results)
        case ast.AttrExpr(attr_path=ast.AttrPath(attr_name=str() as name, sub_attr=None, uri=None)):
            sub = attribute.sub(name)
            if sub is None:
                raise InvalidFilter(f"'{attribute.name}' has no sub-attribute '{name}'")
            value = node.comp_value.value if node.comp_value is not None else None
            actual = next((v for k, v in element.items() if k.lower() == sub.name.lower()), None)
            return matches(node.value.lower(), actual, value, sub, f"{attribute.name}.{sub.name}")
    raise InvalidFilter(f"a '{attribute.name}[...]' filter may only compare sub-attributes")
