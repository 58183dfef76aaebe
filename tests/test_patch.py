"""PATCH (RFC 7644 §3.5.2) over canonical documents: every form Okta and Entra ID send."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim_bridge.errors import (
    BridgeError,
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
)
from scim_bridge.scim.patch import (
    MAX_OPERATIONS,
    MemberChange,
    Operation,
    apply_operations,
    parse_patch_request,
    parse_path,
    split_group_operations,
)
from scim_bridge.scim.schema import ENTERPRISE_USER, GROUP_TYPE, PATCH_OP, USER_TYPE

ENT = ENTERPRISE_USER
ABSENT = object()

ALICE: dict[str, Any] = {
    "userName": "alice@example.com",
    "externalId": "00u1",
    "name": {"givenName": "Alice", "familyName": "Smith"},
    "displayName": "Alice Smith",
    "active": True,
    "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
    ENT: {"employeeNumber": "701984", "manager": {"value": "mgr-1"}},
}
TEAM = {"displayName": "Engineering", "externalId": "g-ext"}


def body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def patch_user(*operations: dict[str, Any], document: dict[str, Any] = ALICE) -> dict[str, Any]:
    parsed = parse_patch_request(body(*operations), USER_TYPE)
    return apply_operations(document, parsed, USER_TYPE)


def changed(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``changes`` applied; ``ABSENT`` removes a key."""
    result = copy.deepcopy(document)
    for key, value in changes.items():
        if value is ABSENT:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def split(*operations: dict[str, Any]) -> list[Operation | MemberChange]:
    return split_group_operations(parse_patch_request(body(*operations), GROUP_TYPE))


# -- user changes, one IdP form per case -------------------------------------------------------

WORK_EMAIL = 'emails[type eq "work"].value'
EMPLOYEE_NUMBER = f"{ENT}:employeeNumber"
MANAGER = f"{ENT}:manager"

USER_FORMS = [
    pytest.param(
        [{"op": "replace", "value": {"active": False}}],
        {"active": False},
        id="okta-deactivate-pathless",
    ),
    pytest.param(
        [{"op": "Replace", "path": "active", "value": "False"}],
        {"active": False},
        id="entra-disable-capitalised-string-false",
    ),
    pytest.param(
        [{"op": "replace", "path": "active", "value": "false"}],
        {"active": False},
        id="entra-disable-lowercase-string-false",
    ),
    pytest.param(
        [{"op": "replace", "path": "active", "value": False}],
        {"active": False},
        id="entra-flag-disable-boolean",
    ),
    pytest.param(
        [{"op": "Add", "path": "active", "value": "False"}],
        {"active": False},
        id="entra-add-on-active-is-replace",
    ),
    pytest.param(
        [{"op": "Add", "path": "nickName", "value": "Babs"}],
        {"nickName": "Babs"},
        id="entra-add-single-valued-string",
    ),
    pytest.param(
        [{"op": "add", "path": "NICKNAME", "value": "Babs"}],
        {"nickName": "Babs"},
        id="entra-flag-add-any-case-attribute",
    ),
    pytest.param(
        [
            {"op": "Replace", "path": "displayName", "value": "Ally S"},
            {"op": "Replace", "path": WORK_EMAIL, "value": "ally@example.com"},
            {"op": "Replace", "path": "userName", "value": "ally@example.com"},
            {"op": "Replace", "path": "name.familyName", "value": "Stone"},
            {"op": "Replace", "path": "name.formatted", "value": "Ally Stone"},
            {"op": "Replace", "path": "externalId", "value": "00u2"},
            {"op": "Replace", "path": EMPLOYEE_NUMBER, "value": "42"},
        ],
        {
            "displayName": "Ally S",
            "emails": [{"value": "ally@example.com", "type": "work", "primary": True}],
            "userName": "ally@example.com",
            "name": {"givenName": "Alice", "familyName": "Stone", "formatted": "Ally Stone"},
            "externalId": "00u2",
            ENT: {"employeeNumber": "42", "manager": {"value": "mgr-1"}},
        },
        id="entra-several-replace-ops",
    ),
    pytest.param(
        [
            {"op": "Replace", "path": "displayName", "value": "First"},
            {"op": "Replace", "path": "displayName", "value": "Second"},
        ],
        {"displayName": "Second"},
        id="entra-replace-ops-apply-in-order",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "value": {
                    "displayName": "Ally S",
                    "name.givenName": "Ally",
                    "name.familyName": "Stone",
                    EMPLOYEE_NUMBER: "42",
                },
            }
        ],
        {
            "displayName": "Ally S",
            "name": {"givenName": "Ally", "familyName": "Stone"},
            ENT: {"employeeNumber": "42", "manager": {"value": "mgr-1"}},
        },
        id="entra-flag-pathless-dotted-and-urn-keys",
    ),
    pytest.param(
        [{"op": "add", "value": {"name.middleName": "Jo", "title": "CTO"}}],
        {
            "name": {"givenName": "Alice", "familyName": "Smith", "middleName": "Jo"},
            "title": "CTO",
        },
        id="entra-flag-pathless-add-dotted-keys",
    ),
    pytest.param(
        [{"op": "replace", "value": {WORK_EMAIL: "ally@example.com"}}],
        {"emails": [{"value": "ally@example.com", "type": "work", "primary": True}]},
        id="pathless-value-filter-key",
    ),
    pytest.param(
        [{"op": "replace", "value": {ENT: {"department": "R&D", "employeeNumber": "7"}}}],
        {ENT: {"employeeNumber": "7", "manager": {"value": "mgr-1"}, "department": "R&D"}},
        id="pathless-extension-urn-key-with-object",
    ),
    pytest.param(
        [{"op": "add", "path": ENT, "value": {"department": "R&D"}}],
        {ENT: {"employeeNumber": "701984", "manager": {"value": "mgr-1"}, "department": "R&D"}},
        id="add-to-extension-urn-path-merges",
    ),
    pytest.param(
        [{"op": "replace", "path": ENT.lower(), "value": {"employeeNumber": "7"}}],
        {ENT: {"employeeNumber": "7", "manager": {"value": "mgr-1"}}},
        id="replace-extension-urn-path-merges",
    ),
    pytest.param(
        [{"op": "remove", "path": ENT}],
        {ENT: ABSENT},
        id="remove-extension-urn-path-clears-the-extension",
    ),
    pytest.param(
        [{"op": "replace", "value": {"name": {"givenName": "Ally"}}}],
        {"name": {"givenName": "Ally", "familyName": "Smith"}},
        id="pathless-complex-value-merges",
    ),
    pytest.param(
        [{"op": "replace", "path": "name", "value": {"givenName": "Ally"}}],
        {"name": {"givenName": "Ally", "familyName": "Smith"}},
        id="replace-complex-keeps-unnamed-sub-attributes",
    ),
    pytest.param(
        [{"op": "add", "path": "name", "value": {"honorificPrefix": "Dr"}}],
        {"name": {"givenName": "Alice", "familyName": "Smith", "honorificPrefix": "Dr"}},
        id="add-complex-merges",
    ),
    pytest.param(
        [{"op": "Add", "path": MANAGER, "value": "mgr-2"}],
        {ENT: {"employeeNumber": "701984", "manager": {"value": "mgr-2"}}},
        id="entra-manager-set-plain-string",
    ),
    pytest.param(
        [{"op": "replace", "path": MANAGER, "value": "mgr-3"}],
        {ENT: {"employeeNumber": "701984", "manager": {"value": "mgr-3"}}},
        id="entra-manager-change",
    ),
    pytest.param(
        [{"op": "replace", "path": MANAGER, "value": ""}],
        {ENT: {"employeeNumber": "701984"}},
        id="entra-manager-clear-with-empty-string",
    ),
    pytest.param(
        [{"op": "replace", "path": "manager", "value": {"value": "mgr-4"}}],
        {ENT: {"employeeNumber": "701984", "manager": {"value": "mgr-4"}}},
        id="unprefixed-manager-is-enterprise",
    ),
    pytest.param(
        [{"op": "replace", "path": f"{MANAGER}.value", "value": "mgr-5"}],
        {ENT: {"employeeNumber": "701984", "manager": {"value": "mgr-5"}}},
        id="manager-value-sub-attribute",
    ),
    pytest.param(
        [{"op": "remove", "path": EMPLOYEE_NUMBER}],
        {ENT: {"manager": {"value": "mgr-1"}}},
        id="remove-extension-attribute",
    ),
    pytest.param(
        [{"op": "remove", "path": EMPLOYEE_NUMBER}, {"op": "remove", "path": "manager"}],
        {ENT: ABSENT},
        id="emptied-extension-block-disappears",
    ),
    pytest.param(
        [{"op": "replace", "path": "displayName", "value": ""}],
        {"displayName": ABSENT},
        id="entra-replace-empty-string-clears",
    ),
    pytest.param(
        [{"op": "replace", "value": {"displayName": None, "name.givenName": None}}],
        {"displayName": ABSENT, "name": {"familyName": "Smith"}},
        id="entra-pathless-null-clears",
    ),
    pytest.param(
        [{"op": "replace", "path": WORK_EMAIL, "value": ""}],
        {"emails": ABSENT},
        id="clearing-filtered-value-drops-element",
    ),
    pytest.param(
        [{"op": "remove", "path": "name.givenName"}],
        {"name": {"familyName": "Smith"}},
        id="remove-sub-attribute",
    ),
    pytest.param(
        [{"op": "remove", "path": "name"}],
        {"name": ABSENT},
        id="remove-complex-attribute",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "work"]'}],
        {"emails": ABSENT},
        id="remove-by-value-filter",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "home"]'}],
        {},
        id="remove-by-filter-matching-nothing-is-a-no-op",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": [{"value": "a@home.net", "type": "home"}]}],
        {
            "emails": [
                {"value": "alice@example.com", "type": "work", "primary": True},
                {"value": "a@home.net", "type": "home"},
            ]
        },
        id="add-multi-valued-appends",
    ),
    pytest.param(
        [
            {
                "op": "add",
                "path": "emails",
                "value": [{"value": "a@home.net", "type": "home", "primary": "true"}],
            }
        ],
        {
            "emails": [
                {"value": "alice@example.com", "type": "work", "primary": False},
                {"value": "a@home.net", "type": "home", "primary": True},
            ]
        },
        id="added-primary-string-true-takes-primary",
    ),
    pytest.param(
        [
            {
                "op": "add",
                "path": "emails",
                "value": [{"value": "alice@example.com", "type": "work", "primary": True}],
            }
        ],
        {},
        id="add-identical-element-is-deduplicated",
    ),
    pytest.param(
        [{"op": "replace", "path": "emails", "value": [{"value": "n@example.com"}]}],
        {"emails": [{"value": "n@example.com"}]},
        id="replace-multi-valued-replaces-the-list",
    ),
    pytest.param(
        [{"op": "replace", "path": "emails", "value": None}],
        {"emails": ABSENT},
        id="replace-multi-valued-with-null-clears",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "work"]', "value": {"value": "w@x.io"}}],
        {"emails": [{"type": "work", "value": "w@x.io"}]},
        id="replace-filtered-element-keeps-filter-labels",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "work"].primary', "value": "false"}],
        {"emails": [{"value": "alice@example.com", "type": "work", "primary": False}]},
        id="replace-filtered-sub-attribute-coerces-boolean",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "work"].primary'}],
        {"emails": [{"value": "alice@example.com", "type": "work"}]},
        id="remove-filtered-sub-attribute",
    ),
    pytest.param(
        [{"op": "replace", "path": "emails.type", "value": "other"}],
        {"emails": [{"value": "alice@example.com", "type": "other", "primary": True}]},
        id="sub-attribute-without-filter-targets-every-element",
    ),
    pytest.param(
        [{"op": "add", "path": "phoneNumbers.value", "value": "+1 555 0100"}],
        {"phoneNumbers": [{"value": "+1 555 0100"}]},
        id="sub-attribute-without-filter-on-empty-attribute-creates-element",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "value": {
                    "id": "someone-else",
                    "meta": {"resourceType": "User"},
                    "schemas": [PATCH_OP],
                    "groups": [{"value": "g1"}],
                    "password": "hunter2",
                    "urn:example:unknown:1.0:User:shoeSize": "44",
                    "nosuch": 1,
                    "name.nosuch": "x",
                    "displayName": "Ally",
                },
            }
        ],
        {"displayName": "Ally"},
        id="pathless-ignores-read-only-write-only-and-unknown-keys",
    ),
    pytest.param(
        [{"op": "replace", "path": "password", "value": "hunter2"}],
        {},
        id="okta-password-sync-is-accepted-and-not-stored",
    ),
]


@pytest.mark.parametrize(("operations", "changes"), USER_FORMS)
def test_user_patch_form_changes_the_document(
    operations: list[dict[str, Any]], changes: dict[str, Any]
) -> None:
    assert patch_user(*operations) == changed(ALICE, changes)


def test_okta_activate_pathless_sets_active_true() -> None:
    inactive = changed(ALICE, {"active": False})
    assert patch_user({"op": "replace", "value": {"active": True}}, document=inactive)["active"]


@pytest.mark.parametrize(
    ("path", "element"),
    [
        ('emails[type eq "home"].value', {"type": "home", "value": "x@home.net"}),
        ('phoneNumbers[type eq "mobile"].value', {"type": "mobile", "value": "+1 555 0100"}),
        ('addresses[type eq "work"].formatted', {"type": "work", "formatted": "1 Main St"}),
        ('addresses[type eq "work"].streetAddress', {"type": "work", "streetAddress": "1 Main"}),
        ('addresses[type eq "work"].postalCode', {"type": "work", "postalCode": "98052"}),
        ('addresses[type eq "work"].country', {"type": "work", "country": "US"}),
        (
            'phoneNumbers[type eq "work" and primary eq true].value',
            {"type": "work", "primary": True, "value": "+1 555 0199"},
        ),
    ],
)
@pytest.mark.parametrize("op", ["Add", "Replace", "add", "replace"])
def test_entra_value_filter_miss_creates_the_element(
    op: str, path: str, element: dict[str, Any]
) -> None:
    value = next(v for k, v in element.items() if k not in ("type", "primary"))
    result = patch_user({"op": op, "path": path, "value": value})
    attribute = path.split("[")[0]
    assert result[attribute][-1] == element


def test_value_filter_miss_builds_one_element_from_several_sub_attribute_ops() -> None:
    result = patch_user(
        {"op": "Replace", "path": 'addresses[type eq "work"].streetAddress', "value": "1 Main"},
        {"op": "Replace", "path": 'addresses[type eq "work"].postalCode', "value": "98052"},
        {"op": "Replace", "path": 'addresses[type eq "work"].country', "value": "US"},
    )
    assert result["addresses"] == [
        {"type": "work", "streetAddress": "1 Main", "postalCode": "98052", "country": "US"}
    ]


def test_value_filter_miss_with_empty_value_changes_nothing() -> None:
    assert "phoneNumbers" not in patch_user(
        {"op": "replace", "path": 'phoneNumbers[type eq "fax"].value', "value": ""}
    )


@pytest.mark.parametrize(
    "path",
    [
        'emails[value co "nobody"].type',
        'emails[type eq "home" or type eq "other"].value',
        'emails[not (type eq "work")].value',
    ],
)
def test_value_filter_miss_that_cannot_build_an_element_is_no_target(path: str) -> None:
    with pytest.raises(NoTarget):
        patch_user({"op": "replace", "path": path, "value": "x@home.net"})


def test_entra_legacy_manager_list_form_sets_the_manager() -> None:
    result = patch_user(
        {
            "op": "Add",
            "path": "manager",
            "value": [{"$ref": "http://example.com/Users/mgr-9", "value": "mgr-9"}],
        }
    )
    assert result[ENT]["manager"]["value"] == "mgr-9"


def test_apply_does_not_mutate_the_input_document() -> None:
    before = copy.deepcopy(ALICE)
    patch_user(
        {"op": "add", "path": "emails", "value": [{"value": "b@x.io", "primary": True}]},
        {"op": "remove", "path": EMPLOYEE_NUMBER},
        {"op": "replace", "path": "name.givenName", "value": "Ally"},
    )
    assert before == ALICE


# -- reading the body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param(
            {"Operations": [{"op": "replace", "value": {"active": False}}]}, id="missing-schemas"
        ),
        pytest.param(
            {"schemas": [], "Operations": [{"op": "replace", "value": {"active": False}}]},
            id="empty-schemas",
        ),
        pytest.param(
            {
                "Operations": [{"op": "Replace", "path": "active", "value": False}],
                "schemas": [PATCH_OP],
            },
            id="operations-before-schemas",
        ),
        pytest.param(
            {
                "SCHEMAS": [PATCH_OP.upper()],
                "operations": [{"OP": "REPLACE", "Path": "active", "Value": "False"}],
            },
            id="any-case-keys-and-ops",
        ),
        pytest.param(
            {"Operations": [{"op": "replace", "path": "", "value": {"active": "false"}}]},
            id="empty-path-is-no-path",
        ),
    ],
)
def test_tolerated_body_shape_deactivates(request_body: dict[str, Any]) -> None:
    operations = parse_patch_request(request_body, USER_TYPE)
    assert apply_operations(ALICE, operations, USER_TYPE)["active"] is False


def test_ops_are_normalised_to_lowercase() -> None:
    operations = parse_patch_request(
        body({"op": "Add", "path": "nickName", "value": "B"}, {"op": "Remove", "path": "title"}),
        USER_TYPE,
    )
    assert [operation.op for operation in operations] == ["add", "remove"]


def test_empty_operations_is_a_no_op() -> None:
    operations = parse_patch_request(body(), USER_TYPE)
    assert operations == []
    assert apply_operations(ALICE, operations, USER_TYPE) == ALICE


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        pytest.param([{"op": "replace"}], InvalidSyntax, id="body-is-a-list"),
        pytest.param("replace", InvalidSyntax, id="body-is-a-string"),
        pytest.param(None, InvalidSyntax, id="body-is-null"),
        pytest.param({"schemas": [PATCH_OP]}, InvalidSyntax, id="operations-missing"),
        pytest.param({"Operations": {"op": "add"}}, InvalidSyntax, id="operations-not-a-list"),
        pytest.param(
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": []},
            InvalidSyntax,
            id="schemas-without-patchop",
        ),
        pytest.param(body("replace"), InvalidSyntax, id="operation-not-an-object"),
        pytest.param(body({"path": "active", "value": False}), InvalidSyntax, id="op-missing"),
        pytest.param(body({"op": "move", "path": "active"}), InvalidSyntax, id="op-unknown"),
        pytest.param(
            body(*[{"op": "add", "path": "title", "value": "x"}] * (MAX_OPERATIONS + 1)),
            InvalidValue,
            id="too-many-operations",
        ),
        pytest.param(body({"op": "remove"}), NoTarget, id="remove-without-path"),
        pytest.param(body({"op": "add", "path": "title"}), InvalidValue, id="add-without-value"),
        pytest.param(
            body({"op": "replace", "value": "x"}), InvalidValue, id="pathless-value-is-a-string"
        ),
        pytest.param(
            body({"op": "replace", "value": [{"active": False}]}),
            InvalidValue,
            id="pathless-value-is-a-list",
        ),
        pytest.param(
            body({"op": "add", "path": ENT, "value": "x"}),
            InvalidValue,
            id="extension-urn-path-with-non-object-value",
        ),
        pytest.param(
            body({"op": "replace", "path": 7, "value": "x"}), InvalidPath, id="path-not-a-string"
        ),
        pytest.param(
            body({"op": "replace", "path": "shoeSize", "value": "44"}),
            InvalidPath,
            id="unknown-attribute",
        ),
        pytest.param(
            body({"op": "replace", "path": "urn:example:x:1.0:User:a", "value": 1}),
            InvalidPath,
            id="unknown-schema-urn",
        ),
        pytest.param(
            body({"op": "replace", "path": "name.nickName", "value": "x"}),
            InvalidPath,
            id="unknown-sub-attribute",
        ),
        pytest.param(
            body({"op": "replace", "path": "emails[type eq ].value", "value": "x"}),
            InvalidPath,
            id="malformed-filter",
        ),
        pytest.param(
            body({"op": "replace", "path": 'emails[nosuch eq "x"].value', "value": "x"}),
            InvalidPath,
            id="filter-on-unknown-sub-attribute",
        ),
        pytest.param(
            body({"op": "replace", "path": 'emails[type eq "work".value', "value": "x"}),
            InvalidPath,
            id="unclosed-filter",
        ),
        pytest.param(
            body({"op": "replace", "path": 'name[givenName eq "A"]', "value": "x"}),
            InvalidPath,
            id="filter-on-single-valued-attribute",
        ),
        pytest.param(
            body({"op": "replace", "path": "name..givenName", "value": "x"}),
            InvalidPath,
            id="malformed-dots",
        ),
        pytest.param(
            body({"op": "replace", "path": "id", "value": "x"}), Mutability, id="path-to-id"
        ),
        pytest.param(body({"op": "remove", "path": "meta"}), Mutability, id="path-to-meta"),
        pytest.param(
            body({"op": "replace", "path": "meta.created", "value": "x"}),
            Mutability,
            id="path-to-meta-sub-attribute",
        ),
        pytest.param(
            body({"op": "add", "path": "groups", "value": [{"value": "g"}]}),
            Mutability,
            id="path-to-groups",
        ),
        pytest.param(
            body({"op": "replace", "value": {"emails[type eq ]": "x"}}),
            InvalidPath,
            id="pathless-key-with-malformed-filter",
        ),
        pytest.param(
            body({"op": "replace", "path": f"{MANAGER}.displayName", "value": "x"}),
            Mutability,
            id="path-to-read-only-sub-attribute",
        ),
    ],
)
def test_bad_request_is_rejected(request_body: Any, error: type[BridgeError]) -> None:
    with pytest.raises(error) as raised:
        parse_patch_request(request_body, USER_TYPE)
    assert raised.value.detail


def test_unknown_path_error_names_the_path() -> None:
    with pytest.raises(InvalidPath, match="shoeSize"):
        parse_patch_request(body({"op": "add", "path": "shoeSize", "value": "44"}), USER_TYPE)


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param({"op": "remove", "path": "userName"}, id="remove-userName"),
        pytest.param({"op": "replace", "path": "userName", "value": ""}, id="empty-userName"),
        pytest.param({"op": "replace", "value": {"userName": None}}, id="pathless-null-userName"),
    ],
)
def test_clearing_a_required_attribute_is_a_mutability_error(operation: dict[str, Any]) -> None:
    with pytest.raises(Mutability, match="userName"):
        patch_user(operation)


@pytest.mark.parametrize(
    ("value", "error"),
    [("maybe", InvalidValue), ({"value": True}, InvalidValue)],
)
def test_uncoercible_value_is_invalid(value: Any, error: type[BridgeError]) -> None:
    with pytest.raises(error):
        patch_user({"op": "replace", "path": "active", "value": value})


# -- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("userName", (None, "userName", None)),
        ("USERNAME", (None, "userName", None)),
        ("urn:ietf:params:scim:schemas:core:2.0:User:userName", (None, "userName", None)),
        ("name.givenName", (None, "name", "givenName")),
        ("NAME.GIVENNAME", (None, "name", "givenName")),
        (EMPLOYEE_NUMBER, (ENT, "employeeNumber", None)),
        (EMPLOYEE_NUMBER.lower(), (ENT, "employeeNumber", None)),
        ("manager", (ENT, "manager", None)),
        (MANAGER, (ENT, "manager", None)),
        (f"{MANAGER}.value", (ENT, "manager", "value")),
        (WORK_EMAIL, (None, "emails", "value")),
        ('addresses[type eq "work"].formatted', (None, "addresses", "formatted")),
        ('phoneNumbers[type eq "mobile"].value', (None, "phoneNumbers", "value")),
        ('emails[value eq "a]b@x.io"]', (None, "emails", None)),
        ("emails", (None, "emails", None)),
    ],
)
def test_user_path_parses_to_canonical_spelling(
    text: str, expected: tuple[str | None, str, str | None]
) -> None:
    path = parse_path(text, USER_TYPE)
    assert (path.schema_uri, path.attribute, path.sub_attribute) == expected


@pytest.mark.parametrize("text", ["userName", "name.givenName", MANAGER, "emails"])
def test_path_without_brackets_has_no_value_filter(text: str) -> None:
    assert parse_path(text, USER_TYPE).value_filter is None


SEVERAL = {
    **ALICE,
    "emails": [
        {"value": "a]b@x.io", "type": "work", "primary": True},
        {"value": "alice@home.example", "type": "home"},
        {"value": "a@other.example", "type": "other"},
    ],
    "phoneNumbers": [{"value": "1", "type": "work"}, {"value": "2", "type": "mobile"}],
    "addresses": [{"type": "work", "formatted": "Old"}, {"type": "home", "formatted": "Home"}],
}


@pytest.mark.parametrize(
    ("operation", "attribute", "expected"),
    [
        pytest.param(
            {"op": "replace", "path": WORK_EMAIL, "value": "new@x.io"},
            "emails",
            [
                {"value": "new@x.io", "type": "work", "primary": True},
                {"value": "alice@home.example", "type": "home"},
                {"value": "a@other.example", "type": "other"},
            ],
            id="work-email",
        ),
        pytest.param(
            {"op": "replace", "path": 'emails[type eq "home" or type eq "other"].value',
             "value": "same@x.io"},
            "emails",
            [
                {"value": "a]b@x.io", "type": "work", "primary": True},
                {"value": "same@x.io", "type": "home"},
                {"value": "same@x.io", "type": "other"},
            ],
            id="or-in-brackets",
        ),
        pytest.param(
            {"op": "remove", "path": 'emails[value eq "a]b@x.io"]'},
            "emails",
            [
                {"value": "alice@home.example", "type": "home"},
                {"value": "a@other.example", "type": "other"},
            ],
            id="bracket-in-a-quoted-value",
        ),
        pytest.param(
            {"op": "replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "3"},
            "phoneNumbers",
            [{"value": "1", "type": "work"}, {"value": "3", "type": "mobile"}],
            id="mobile",
        ),
        pytest.param(
            {"op": "replace", "path": 'addresses[type eq "work"].formatted', "value": "New"},
            "addresses",
            [{"type": "work", "formatted": "New"}, {"type": "home", "formatted": "Home"}],
            id="work-address",
        ),
    ],
)
def test_value_filter_path_changes_only_the_elements_it_selects(
    operation: dict[str, Any], attribute: str, expected: list[dict[str, Any]]
) -> None:
    result = patch_user(operation, document=SEVERAL)
    assert result[attribute] == expected
    assert result == changed(SEVERAL, {attribute: expected})


def test_member_filter_path_selects_the_member_named() -> None:
    assert split({"op": "remove", "path": 'members[value eq "2819c223"]'}) == [
        MemberChange("remove", ("2819c223",))
    ]


def test_group_has_no_enterprise_attributes() -> None:
    with pytest.raises(InvalidPath):
        parse_path("manager", GROUP_TYPE)


# -- groups --------------------------------------------------------------------------------------

GROUP_FORMS = [
    pytest.param(
        [
            {"op": "remove", "path": 'members[value eq "u1"]'},
            {"op": "add", "path": "members", "value": [{"value": "u2", "display": "bob"}]},
        ],
        [MemberChange("remove", ("u1",)), MemberChange("add", ("u2",), (("u2", "bob"),))],
        id="okta-remove-by-filter-then-add",
    ),
    pytest.param(
        [{"op": "replace", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}],
        [MemberChange("replace", ("u1", "u2"))],
        id="okta-push-replaces-members",
    ),
    pytest.param(
        [
            {
                "op": "Add",
                "path": "members",
                "value": [{"$ref": None, "value": "u1"}, {"$ref": None, "value": "u2"}],
            }
        ],
        [MemberChange("add", ("u1", "u2"))],
        id="entra-add-members-with-null-ref",
    ),
    pytest.param(
        [{"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "u1"}]}],
        [MemberChange("remove", ("u1",))],
        id="entra-remove-members-by-value-array-with-null-ref",
    ),
    pytest.param(
        [{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}],
        [MemberChange("remove", ("u1091",))],
        id="entra-remove-members-by-value-array",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "u1"]'}],
        [MemberChange("remove", ("u1",))],
        id="entra-flag-remove-member-by-filter",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "u1" or value eq "u2"]'}],
        [MemberChange("remove", ("u1", "u2"))],
        id="remove-members-by-or-filter",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "u1" or value eq "u2" or value eq "u1"]'}],
        [MemberChange("remove", ("u1", "u2"))],
        id="remove-members-by-long-or-filter-deduplicated",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[VALUE EQ "u1"]'}],
        [MemberChange("remove", ("u1",))],
        id="remove-member-filter-any-case",
    ),
    pytest.param(
        [{"op": "Remove", "path": "members", "value": []}],
        [MemberChange("remove", ())],
        id="remove-members-with-empty-value-list-removes-nobody",
    ),
    pytest.param(
        [{"op": "remove", "path": "members"}],
        [MemberChange("remove_all", ())],
        id="remove-members-without-value-removes-all",
    ),
    pytest.param(
        [{"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u1"}]}],
        [MemberChange("add", ("u1",))],
        id="duplicate-member-ids-deduplicated",
    ),
    pytest.param(
        [{"op": "Replace", "path": "displayName", "value": "Eng"}],
        [Operation("replace", parse_path("displayName", GROUP_TYPE), "Eng")],
        id="entra-rename-stays-an-operation",
    ),
    pytest.param(
        [{"op": "add", "value": {"displayName": "Eng", "members": [{"value": "u1"}]}}],
        [MemberChange("add", ("u1",)), Operation("add", None, {"displayName": "Eng"})],
        id="pathless-members-key-is-split-off",
    ),
    pytest.param(
        [{"op": "replace", "value": {"Members": [{"value": "u3"}]}}],
        [MemberChange("replace", ("u3",))],
        id="pathless-members-only",
    ),
]


@pytest.mark.parametrize(("operations", "expected"), GROUP_FORMS)
def test_group_patch_form_splits_into_member_changes(
    operations: list[dict[str, Any]], expected: list[Operation | MemberChange]
) -> None:
    assert split(*operations) == expected


def test_okta_group_rename_ignores_id_inside_value() -> None:
    operations = split({"op": "replace", "value": {"id": "g-1", "displayName": "Eng 2"}})
    assert apply_operations(TEAM, operations, GROUP_TYPE) == {**TEAM, "displayName": "Eng 2"}


def test_remove_members_by_value_array_removes_only_the_listed_members() -> None:
    group = {**TEAM, "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]}
    operations = parse_patch_request(
        body({"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "u2"}]}),
        GROUP_TYPE,
    )
    assert apply_operations(group, operations, GROUP_TYPE)["members"] == [
        {"value": "u1"},
        {"value": "u3"},
    ]


def test_remove_members_value_array_tolerates_a_repeated_entry() -> None:
    group = {**TEAM, "members": [{"value": "u1"}, {"value": "u2"}]}
    operations = parse_patch_request(
        body({"op": "remove", "path": "members", "value": [{"value": "u1"}, {"value": "u1"}]}),
        GROUP_TYPE,
    )
    assert apply_operations(group, operations, GROUP_TYPE)["members"] == [{"value": "u2"}]


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        pytest.param(
            {"op": "remove", "path": 'members[display eq "bob"]'},
            InvalidFilter,
            id="filter-on-other-sub-attribute",
        ),
        pytest.param(
            {"op": "remove", "path": 'members[value sw "u"]'},
            InvalidFilter,
            id="filter-with-other-operator",
        ),
        pytest.param(
            {"op": "remove", "path": 'members[value eq "u1" and type eq "User"]'},
            InvalidFilter,
            id="filter-with-and",
        ),
        pytest.param(
            {"op": "add", "path": "members", "value": [{"display": "bob"}]},
            InvalidValue,
            id="member-without-value",
        ),
        pytest.param(
            {"op": "add", "path": "members", "value": [{"value": ""}]},
            InvalidValue,
            id="member-with-empty-value",
        ),
        pytest.param(
            {"op": "add", "path": 'members[value eq "u1"]', "value": {"value": "u1"}},
            InvalidPath,
            id="add-with-member-filter",
        ),
        pytest.param(
            {"op": "replace", "path": "members.value", "value": "u1"},
            InvalidPath,
            id="member-sub-attribute-path",
        ),
    ],
)
def test_bad_member_operation_is_rejected(
    operation: dict[str, Any], error: type[BridgeError]
) -> None:
    with pytest.raises(error) as raised:
        split(operation)
    assert raised.value.detail


def test_removing_group_display_name_is_a_mutability_error() -> None:
    operations = parse_patch_request(body({"op": "remove", "path": "displayName"}), GROUP_TYPE)
    with pytest.raises(Mutability, match="displayName"):
        apply_operations(TEAM, operations, GROUP_TYPE)
