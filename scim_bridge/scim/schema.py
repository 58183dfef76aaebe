"""SCIM attribute definitions as data (RFC 7643 §4, §7, §8.7).

Discovery documents, attribute lookup for filters and PATCH paths, case-exactness,
mutability, the storage mapping and the length of text (checked in documents.py, the size of
each column in models.py) all derive from these definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SERVICE_PROVIDER_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    description: str = ""
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    #: Storage column: on the resource's table for single-valued attributes, on the
    #: value-row table for sub-attributes of multi-valued ones.
    column: str | None = None
    #: The most characters a value may hold; ``None`` for unbounded text (or no column).
    #: models.py sizes the column from it (stored_length) and documents.coerce enforces it,
    #: so SQLite, which ignores VARCHAR lengths, and PostgreSQL accept the same values.
    #: Not advertised in /Schemas: RFC 7643 §7 has no field for it.
    max_length: int | None = None

    def sub(self, name: str) -> Attribute | None:
        lowered = name.lower()
        for attribute in self.sub_attributes:
            if attribute.name.lower() == lowered:
                return attribute
        return None

    def to_discovery(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.canonical_values:
            document["canonicalValues"] = list(self.canonical_values)
        if self.type == "reference":
            document["referenceTypes"] = list(self.reference_types or ("external",))
        if self.sub_attributes:
            document["subAttributes"] = [sub.to_discovery() for sub in self.sub_attributes]
        return document


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...] = field(default_factory=tuple)

    def attribute(self, name: str) -> Attribute | None:
        lowered = name.lower()
        for attribute in self.attributes:
            if attribute.name.lower() == lowered:
                return attribute
        return None

    def to_discovery(self, base_url: str) -> dict[str, Any]:
        return {
            "schemas": [SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [attribute.to_discovery() for attribute in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.id}"},
        }


#: Text limits, in characters: most text, short codes (types, locales, postal codes), URLs.
TEXT = 512
SHORT = 64
URL = 2048


def _s(name: str, column: str | None = None, **kw: Any) -> Attribute:
    return Attribute(name=name, column=column, **kw)


def stored_length(attributes: Iterable[Attribute], column: str) -> int:
    """The one limit of the attributes (and sub-attributes) stored in ``column``: models.py
    sizes its String(N) from it, so a column is never shorter than what documents accept.
    Attributes sharing a column (every multi-valued ``value``) must agree."""
    limits = {
        attribute.max_length
        for attribute in _walk(attributes)
        if attribute.column == column
    }
    if len(limits) != 1 or None in limits:
        raise ValueError(f"column {column!r} needs one max_length, its attributes give {limits}")
    (limit,) = limits
    assert limit is not None
    return limit


def _walk(attributes: Iterable[Attribute]) -> Iterator[Attribute]:
    for attribute in attributes:
        yield attribute
        yield from _walk(attribute.sub_attributes)


#: The most values one multi-valued User attribute (emails, phoneNumbers, addresses, …) may
#: hold. RFC 7643 has no field for it, so each attribute's ``description`` in /Schemas says it.
#: Group ``members`` is not limited (groups of 100k members are normal).
MAX_VALUES = 100


def _multi(name: str, *subs: Attribute, description: str = "", **kw: Any) -> Attribute:
    return Attribute(
        name=name,
        type="complex",
        multi_valued=True,
        sub_attributes=subs,
        description=description,
        **kw,
    )


def _values(name: str, *subs: Attribute) -> Attribute:
    """A multi-valued User attribute stored as value rows, at most MAX_VALUES of them."""
    return _multi(name, *subs, description=f"The User's {name}: at most {MAX_VALUES} values")


#: Stored as text, but its case-folded key column (``value_key``) holds TEXT characters.
_VALUE = _s("value", "value", max_length=TEXT)
_DISPLAY = _s("display", "display", max_length=TEXT)
_PRIMARY = _s("primary", "primary", type="boolean")


def _typed(*canonical: str) -> Attribute:
    return _s("type", "type", canonical_values=canonical, max_length=SHORT)


COMMON_ID = _s(
    "id", "id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server"
)
COMMON_EXTERNAL_ID = _s("externalId", "external_id", case_exact=True, max_length=TEXT)

USER = Schema(
    id=CORE_USER,
    name="User",
    description="User Account",
    attributes=(
        COMMON_ID,
        COMMON_EXTERNAL_ID,
        _s("userName", "user_name", required=True, uniqueness="server", max_length=TEXT),
        Attribute(
            name="name",
            type="complex",
            sub_attributes=(
                _s("formatted", "name_formatted", max_length=2 * TEXT),
                _s("familyName", "name_family", max_length=TEXT),
                _s("givenName", "name_given", max_length=TEXT),
                _s("middleName", "name_middle", max_length=TEXT),
                _s("honorificPrefix", "name_prefix", max_length=128),
                _s("honorificSuffix", "name_suffix", max_length=128),
            ),
        ),
        _s("displayName", "display_name", max_length=TEXT),
        _s("nickName", "nick_name", max_length=TEXT),
        _s(
            "profileUrl",
            "profile_url",
            type="reference",
            reference_types=("external",),
            max_length=URL,
        ),
        _s("title", "title", max_length=TEXT),
        _s("userType", "user_type", max_length=TEXT),
        _s("preferredLanguage", "preferred_language", max_length=SHORT),
        _s("locale", "locale", max_length=SHORT),
        _s("timezone", "timezone", max_length=SHORT),
        _s("active", "active", type="boolean"),
        _s("password", None, mutability="writeOnly", returned="never"),
        _values("emails", _VALUE, _DISPLAY, _typed("work", "home", "other"), _PRIMARY),
        _values(
            "phoneNumbers",
            _VALUE,
            _DISPLAY,
            _typed("work", "home", "mobile", "fax", "pager", "other"),
            _PRIMARY,
        ),
        _values(
            "ims",
            _VALUE,
            _DISPLAY,
            _typed("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
            _PRIMARY,
        ),
        _values(
            "photos",
            _s(
                "value",
                "value",
                type="reference",
                case_exact=True,
                reference_types=("external",),
                max_length=TEXT,
            ),
            _DISPLAY,
            _typed("photo", "thumbnail"),
            _PRIMARY,
        ),
        _values(
            "addresses",
            _s("formatted", "formatted"),
            _s("streetAddress", "street_address", max_length=TEXT),
            _s("locality", "locality", max_length=256),
            _s("region", "region", max_length=256),
            _s("postalCode", "postal_code", max_length=SHORT),
            _s("country", "country", max_length=SHORT),
            _typed("work", "home", "other"),
            _PRIMARY,
        ),
        _multi(
            "groups",
            _s("value", "value", mutability="readOnly"),
            _s("$ref", None, type="reference", mutability="readOnly", reference_types=("Group",)),
            _s("display", "display", mutability="readOnly"),
            _s("type", "type", mutability="readOnly", canonical_values=("direct", "indirect")),
            mutability="readOnly",
        ),
        _values("entitlements", _VALUE, _DISPLAY, _typed(), _PRIMARY),
        _values("roles", _VALUE, _DISPLAY, _typed(), _PRIMARY),
        _values(
            "x509Certificates",
            _s("value", "value", type="binary", case_exact=True, max_length=TEXT),
            _DISPLAY,
            _typed(),
            _PRIMARY,
        ),
    ),
)

ENTERPRISE = Schema(
    id=ENTERPRISE_USER,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        _s("employeeNumber", "employee_number", max_length=256),
        _s("costCenter", "cost_center", max_length=256),
        _s("organization", "organization", max_length=TEXT),
        _s("division", "division", max_length=TEXT),
        _s("department", "department", max_length=TEXT),
        Attribute(
            name="manager",
            type="complex",
            sub_attributes=(
                _s("value", "manager_id", case_exact=True, max_length=TEXT),
                _s("$ref", None, type="reference", reference_types=("User",)),
                _s("displayName", None, mutability="readOnly"),
            ),
        ),
    ),
)

GROUP = Schema(
    id=CORE_GROUP,
    name="Group",
    description="Group",
    attributes=(
        COMMON_ID,
        COMMON_EXTERNAL_ID,
        _s("displayName", "display_name", required=True, uniqueness="server", max_length=TEXT),
        _multi(
            "members",
            # A user id (models.ID); the display is stored as sent (Membership.display).
            _s("value", "user_id", case_exact=True, mutability="immutable", max_length=SHORT),
            _s("$ref", None, type="reference", mutability="immutable", reference_types=("User",)),
            _s("display", "display", mutability="readOnly", max_length=TEXT),
            _s("type", None, mutability="immutable", canonical_values=("User",)),
        ),
    ),
)

#: Multi-valued user attributes stored as value rows (``groups`` is derived from memberships).
USER_VALUE_ATTRIBUTES = tuple(
    a.name for a in USER.attributes if a.multi_valued and a.name != "groups"
)


@dataclass(frozen=True)
class ResourceType:
    id: str
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *self.extensions)

    def schema_for(self, uri: str | None) -> Schema | None:
        """The schema a URN names (case-insensitively); ``None`` means the core schema."""
        if not uri:
            return self.schema
        lowered = uri.lower()
        for schema in self.schemas:
            if schema.id.lower() == lowered:
                return schema
        return None

    def to_discovery(self, base_url: str) -> dict[str, Any]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.schema.description,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": ext.id, "required": False} for ext in self.extensions],
            "meta": {
                "resourceType": "ResourceType",
                "location": f"{base_url}/ResourceTypes/{self.id}",
            },
        }


USER_TYPE = ResourceType("User", "User", "/Users", USER, (ENTERPRISE,))
GROUP_TYPE = ResourceType("Group", "Group", "/Groups", GROUP)
RESOURCE_TYPES = (USER_TYPE, GROUP_TYPE)
SCHEMAS = (USER, ENTERPRISE, GROUP)

#: Attributes every resource has, outside any schema's attribute list (RFC 7643 §3.1).
COMMON_META = Attribute(
    name="meta",
    type="complex",
    mutability="readOnly",
    sub_attributes=(
        _s("resourceType", None, case_exact=True, mutability="readOnly"),
        _s("created", "created_at", type="dateTime", mutability="readOnly"),
        _s("lastModified", "last_modified", type="dateTime", mutability="readOnly"),
        _s("location", None, type="reference", mutability="readOnly"),
        _s("version", None, case_exact=True, mutability="readOnly"),
    ),
)


def split_urn_path(path: str, resource_type: ResourceType) -> tuple[Schema | None, str]:
    """Split ``urn:...:User:manager.value`` into (schema, ``manager.value``).

    Returns ``(None, path)`` when ``path`` starts with an URN this resource type does not know.
    """
    lowered = path.lower()
    for schema in resource_type.schemas:
        prefix = schema.id.lower()
        if lowered == prefix:
            return schema, ""
        if lowered.startswith(prefix + ":"):
            return schema, path[len(prefix) + 1 :]
    if lowered.startswith("urn:"):
        return None, path
    return resource_type.schema, path


def resolve(
    resource_type: ResourceType, uri: str | None, attr_name: str
) -> tuple[Schema, Attribute] | None:
    """Find an attribute by name, in the schema ``uri`` names or (without one) in any schema
    of the resource type, core first. ``meta`` resolves to the common meta attribute."""
    if uri:
        schema = resource_type.schema_for(uri)
        attribute = schema.attribute(attr_name) if schema else None
        return (schema, attribute) if schema and attribute else None
    if attr_name.lower() == "meta":
        return resource_type.schema, COMMON_META
    for schema in resource_type.schemas:
        attribute = schema.attribute(attr_name)
        if attribute is not None:
            return schema, attribute
    return None
