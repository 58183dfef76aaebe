"""List query parameters (RFC 7644 §3.4.2): filter, sort, paging, projection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidValue
from ..parameters import integer
from .projection import parse_attribute_list
from .schema import LIST_RESPONSE

DEFAULT_COUNT = 100


@dataclass(frozen=True)
class ListQuery:
    filter: str | None = None
    sort_by: str | None = None
    descending: bool = False
    start_index: int = 1
    count: int = DEFAULT_COUNT
    attributes: list[str] = field(default_factory=list)
    excluded_attributes: list[str] = field(default_factory=list)


def list_query(params: Mapping[str, Any], max_count: int) -> ListQuery:
    """Read list parameters from query-string args or a ``.search`` body (names case-insensitive).

    Out-of-range paging is clamped as RFC 7644 §3.4.2.4 says: startIndex < 1 means 1,
    a negative count means 0, and count is capped at the advertised maximum.
    """
    lowered = {str(k).lower(): v for k, v in params.items()}
    order = str(lowered.get("sortorder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise InvalidValue("'sortOrder' must be 'ascending' or 'descending'")
    raw_filter = lowered.get("filter")
    if raw_filter is not None and not isinstance(raw_filter, str):
        raise InvalidValue("'filter' must be a string")
    sort_by = lowered.get("sortby")
    if sort_by is not None and not isinstance(sort_by, str):
        raise InvalidValue("'sortBy' must be a string")
    return ListQuery(
        filter=raw_filter or None,
        sort_by=sort_by or None,
        descending=order == "descending",
        start_index=integer("startIndex", lowered.get("startindex"), 1, low=1),
        count=integer("count", lowered.get("count"), DEFAULT_COUNT, high=max_count),
        attributes=parse_attribute_list(lowered.get("attributes")),
        excluded_attributes=parse_attribute_list(lowered.get("excludedattributes")),
    )


def list_response(
    resources: list[dict[str, Any]], total: int | None = None, start_index: int = 1
) -> dict[str, Any]:
    """A ListResponse (RFC 7644 §3.4.2); ``total`` defaults to the resources given."""
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources) if total is None else total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
