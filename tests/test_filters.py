"""SCIM filters (RFC 7644 §3.4.2.2) over HTTP: which users and groups each filter returns from
``GET /Users?filter=`` and ``GET /Groups?filter=``, which filters are refused with 400
invalidFilter, and the value filters of PATCH paths (``emails[type eq "work"]``).

One app and one dataset per module, created through SCIM; SQLite by default, PostgreSQL when
``SCIM_BRIDGE_TEST_DATABASE_URL`` names it (as for every other test). Tenants keep the datasets
apart: ``acme`` holds the users and groups the tables below query, ``literals`` groups whose
names are awkward string literals, ``patching`` the users the PATCH value-filter tests change.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from scim_bridge import create_app, migrate
from scim_bridge.db import begin_write
from scim_bridge.scim import schema
from scim_bridge.services import tokens
from scim_bridge.settings import Settings

from .conftest import PG_URL, PUBLIC_URL, _truncate, http_client, make_token
from .harness import UNTHROTTLED
from .scimdata import patch

ENTERPRISE = schema.ENTERPRISE_USER
URN = f"{ENTERPRISE}:"
USER_SCHEMAS = [schema.CORE_USER, ENTERPRISE]

#: The users of tenant ``acme``, by label, created in this order.
USERS: dict[str, dict[str, Any]] = {
    "babs": {
        "userName": "bjensen@example.com",
        "externalId": "bjensen",
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": True,
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        "addresses": [
            {"type": "work", "locality": "Hollywood", "postalCode": "91608", "country": "US"}
        ],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations"},
    },
    "john": {
        "userName": "JSmith",
        "externalId": "JSMITH-1",
        "displayName": "John Smith",
        "active": True,
        "emails": [{"value": "John.Smith@Example.com", "type": "work"}],
        ENTERPRISE: {"department": "Sales"},
    },
    "pct": {
        "userName": "100%_real",
        "externalId": "jyoung",
        "active": False,
        "emails": [{"value": "m@other.org", "type": "home"}],
    },
}
#: The groups of tenant ``acme``: label -> (displayName, externalId, member labels).
GROUPS: dict[str, tuple[str, str | None, list[str]]] = {
    "g-admins": ("Admins", "ext-admins", ["babs", "john"]),
    "g-guides": ("Tour Guides", None, ["babs"]),
    "g-sales": ("Sales_Team", None, ["pct"]),
    "g-empty": ("Empty", None, []),
}


@dataclass
class Directory:
    """The module's app, a SCIM client per tenant, and what the server assigned."""

    app: Any
    acme: httpx.Client
    literals: httpx.Client
    patching: httpx.Client
    #: label -> id, for users and groups
    ids: dict[str, str]
    #: label -> resource as read back after the whole dataset was written
    resources: dict[str, dict[str, Any]]
    #: values the filter templates below may name: {babs}, {john_created}, ...
    values: dict[str, str]

    def labels(self, resource: str, filter_text: str, client: httpx.Client | None = None) -> set:
        response = (client or self.acme).get(
            f"/{resource}", params={"filter": filter_text, "count": 1000}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        found = [item["id"] for item in body["Resources"]]
        assert body["totalResults"] == len(found)
        by_id = {identifier: label for label, identifier in self.ids.items()}
        return {by_id.get(identifier, identifier) for identifier in found}


def _database_url(tmp_path: Path) -> str:
    if PG_URL:
        migrate.upgrade(PG_URL)
        _truncate(PG_URL)
        return PG_URL
    url = f"sqlite:///{tmp_path / 'filters.db'}"
    migrate.upgrade(url)
    return url


def _created(client: httpx.Client, resource: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/{resource}", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _read(client: httpx.Client, resource: str, identifier: str) -> dict[str, Any]:
    response = client.get(f"/{resource}/{identifier}")
    assert response.status_code == 200, response.text
    return response.json()


def _moment(resource: dict[str, Any], which: str) -> dt.datetime:
    return dt.datetime.fromisoformat(resource["meta"][which].replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    settings = Settings(
        database_url=_database_url(tmp_path_factory.mktemp("filters")), public_url=PUBLIC_URL,
        **UNTHROTTLED,
    )
    app = create_app(settings)
    bridge = app.extensions["scim_bridge"]
    with bridge.sessions() as db:
        begin_write(db)
        tokens.ensure_default_tenant(db)
        db.commit()
    acme = http_client(app, make_token(app, "acme-okta", "scim", "acme"), "/scim/v2")
    literals = http_client(app, make_token(app, "literals-okta", "scim", "literals"), "/scim/v2")
    patching = http_client(app, make_token(app, "patching-okta", "scim", "patching"), "/scim/v2")
    ids: dict[str, str] = {}
    for label, document in USERS.items():
        ids[label] = _created(acme, "Users", {"schemas": USER_SCHEMAS, **document})["id"]
    manager = {"op": "add", "path": f"{URN}manager", "value": {"value": ids["john"]}}
    assert acme.patch(f"/Users/{ids['babs']}", json=patch(manager)).status_code == 200
    for label, (name, external_id, members) in GROUPS.items():
        body: dict[str, Any] = {"displayName": name,
                                "members": [{"value": ids[member]} for member in members]}
        if external_id:
            body["externalId"] = external_id
        ids[label] = _created(acme, "Groups", body)["id"]
    # pct changes last, so its lastModified is the latest of all users.
    nick = {"op": "replace", "path": "nickName", "value": "P"}
    assert acme.patch(f"/Users/{ids['pct']}", json=patch(nick)).status_code == 200
    resources = {label: _read(acme, "Users" if label in USERS else "Groups", identifier)
                 for label, identifier in ids.items()}
    values = {**ids, **{f"{label}_upper": identifier.upper() for label, identifier in ids.items()}}
    for label, resource in resources.items():
        values[f"{label}_created"] = resource["meta"]["created"]
        values[f"{label}_modified"] = resource["meta"]["lastModified"]
    john_created = _moment(resources["john"], "created")
    values["john_created_minus_5h"] = john_created.astimezone(
        dt.timezone(dt.timedelta(hours=-5))).isoformat()
    values["babs_created_day_after"] = (_moment(resources["babs"], "created")
                                        + dt.timedelta(days=1)).date().isoformat()
    values["babs_created_day_before"] = (_moment(resources["babs"], "created")
                                         - dt.timedelta(days=1)).date().isoformat()
    try:
        yield Directory(app, acme, literals, patching, ids, resources, values)
    finally:
        for client in (acme, literals, patching):
            client.close()
        bridge.close()


# -- which users and groups each filter returns ----------------------------------------------

#: (filter, the labels it returns); ``{name}`` fields come from ``Directory.values``.
USER_CASES = [
    # every operator, on userName (caseExact=false, through the folded key)
    ('userName eq "bjensen@example.com"', "babs"),
    ('userName eq "BJENSEN@EXAMPLE.COM"', "babs"),
    ('userName ne "jsmith"', "babs pct"),
    ('userName co "SMITH"', "john"),
    ('userName sw "bj"', "babs"),
    ('userName ew ".COM"', "babs"),
    ('userName gt "j"', "john"),
    ('userName ge "JSMITH"', "john"),
    ('userName lt "bjensen@example.com"', "pct"),
    ('userName le "bjensen@example.com"', "babs pct"),
    ("userName pr", "babs john pct"),
    ("title pr", "babs"),
    ('USERNAME eq "jsmith"', "john"),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "jsmith"', "john"),
    # logic, grouping and RFC precedence ("and" binds tighter than "or")
    ('userName eq "jsmith" or userName eq "bjensen@example.com"', "babs john"),
    ("active eq true and title pr", "babs"),
    ('active eq false or userName eq "jsmith" and userName eq "bjensen@example.com"', "pct"),
    ('(active eq false or userName eq "jsmith") and userName eq "bjensen@example.com"', ""),
    ('(userName sw "b" or userName sw "j") and not (title pr)', "john"),
    ('not (userName eq "jsmith" or userName eq "100%_real")', "babs"),
    ("not (active eq true)", "pct"),
    ('userName sw "b" AND (title pr OR active EQ false)', "babs"),
    # ne and not include users without the attribute
    ('title ne "Tour Guide"', "john pct"),
    ('not (title eq "tour guide")', "john pct"),
    # case-insensitive strings, case-exact ones
    ('displayName eq "babs jensen"', "babs"),
    ('emails.value eq "JOHN.SMITH@EXAMPLE.COM"', "john"),
    ('emails co "jensen.ORG"', "babs"),
    ('Emails.Value ew "@OTHER.org"', "pct"),
    ('externalId eq "bjensen"', "babs"),
    ('externalId eq "BJENSEN"', ""),
    ('id eq "{babs_upper}"', ""),
    ('id eq "{babs}"', "babs"),
    # value filters: conditions in the brackets and after them apply to the same email
    ('emails[type eq "work" and value co "@example.com"]', "babs john"),
    ('emails[type eq "home" and value co "@example.com"]', ""),
    ('emails.type eq "home" and emails.value co "@example.com"', "babs"),
    ('emails[type eq "work"].value eq "bjensen@example.com"', "babs"),
    ('emails[type eq "home"].value eq "bjensen@example.com"', ""),
    ('emails[type eq "work"] eq "BJENSEN@example.com"', "babs"),
    ('emails[type eq "home" or type eq "other" and value pr]', "babs pct"),
    ('emails[not (type eq "work")]', "babs pct"),
    ("emails[primary eq true]", "babs"),
    ("emails.primary eq true", "babs"),
    ("emails pr", "babs john pct"),
    ("addresses pr", "babs"),
    ('addresses[type eq "work"].postalCode eq "91608"', "babs"),
    ('addresses.locality eq "HOLLYWOOD"', "babs"),
    ("phoneNumbers.value pr", ""),
    # single-valued complex attributes
    ('name.familyName eq "jensen"', "babs"),
    ('name.givenName sw "Bar"', "babs"),
    ("name pr", "babs"),
    ('name[givenName eq "barbara"]', "babs"),
    # enterprise extension, with and without its URN
    (URN + 'employeeNumber eq "701984"', "babs"),
    (URN + 'manager.value eq "{john}"', "babs"),
    ('manager eq "{john}"', "babs"),
    ('manager.value eq "{john_upper}"', ""),
    ("manager pr", "babs"),
    ('department eq "sales"', "john"),
    (URN + 'department co "TOUR"', "babs"),
    ('URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT eq "Sales"', "john"),
    # meta: the moments the server recorded, written back into the filter
    ('meta.created eq "{babs_created}"', "babs"),
    ('meta.created lt "{john_created}"', "babs"),
    ('meta.created le "{john_created}"', "babs john"),
    ('meta.created gt "{babs_created}"', "john pct"),
    ('meta.created gt "{john_created_minus_5h}"', "pct"),
    ('meta.created lt "{babs_created_day_after}"', "babs john pct"),
    ('meta.created lt "{babs_created_day_before}"', ""),
    ('meta.lastModified ge "{pct_modified}"', "pct"),
    ('meta.lastModified gt "{pct_modified}"', ""),
    ('meta.resourceType eq "User"', "babs john pct"),
    ('meta.resourceType eq "Group"', ""),
    # groups, derived from memberships
    ('groups.value eq "{g-admins}"', "babs john"),
    ('groups eq "{g-guides}"', "babs"),
    ('groups.display eq "tour guides"', "babs"),
    ('groups[display sw "sales"]', "pct"),
    ("groups pr", "babs john pct"),
    ('not (groups.value eq "{g-admins}")', "pct"),
    # LIKE metacharacters are literal
    ('userName co "%"', "pct"),
    ('userName co "_"', "pct"),
    ('userName sw "100%"', "pct"),
    ('userName co "\\r"', ""),
    ('displayName co "%"', ""),
    ('emails.value co "_"', ""),
    # booleans
    ("active eq true", "babs john"),
    ("active eq false", "pct"),
    ("active ne true", "pct"),
    ('active eq "False"', "pct"),
    ("active pr", "babs john pct"),
    # Entra's legacy unquoted values
    ("externalId eq jyoung", "pct"),
    ("id eq {babs} and manager eq {john}", "babs"),
    ("userName eq JSMITH", "john"),
    ("active eq True", "babs john"),
    ("employeeNumber eq 701984", "babs"),
    ('emails[type eq work].value eq "m@other.org"', ""),
    ('emails[type eq home].value eq "m@other.org"', "pct"),
]


@pytest.mark.parametrize(("filter_text", "expected"), USER_CASES)
def test_user_filter_returns(directory: Directory, filter_text: str, expected: str) -> None:
    assert directory.labels("Users", filter_text.format_map(directory.values)) == set(
        expected.split()
    )


GROUP_CASES = [
    ('displayName eq "admins"', "g-admins"),
    ('DisplayName eq "ADMINS"', "g-admins"),
    ('displayName co "_"', "g-sales"),
    ('displayName sw "t"', "g-guides"),
    ('displayName eq "Admins" or displayName eq "Empty"', "g-admins g-empty"),
    ('externalId eq "ext-admins"', "g-admins"),
    ('externalId eq "EXT-ADMINS"', ""),
    ('members.value eq "{babs}"', "g-admins g-guides"),
    ('members eq "{john}"', "g-admins"),
    ('members[value eq "{john}"]', "g-admins"),
    ('members.value eq "{john_upper}"', ""),
    ('members.display eq "babs jensen"', "g-admins g-guides"),
    ('members.display eq "100%_REAL"', "g-sales"),
    ("members pr", "g-admins g-guides g-sales"),
    ("not (members pr)", "g-empty"),
    ("id eq {g-admins} and members eq {babs}", "g-admins"),
    ("id eq {g-guides} and members eq {john}", ""),
    ('meta.resourceType eq "Group"', "g-admins g-guides g-sales g-empty"),
    ('meta.created lt "{g-sales_created}"', "g-admins g-guides"),
]


@pytest.mark.parametrize(("filter_text", "expected"), GROUP_CASES)
def test_group_filter_returns(directory: Directory, filter_text: str, expected: str) -> None:
    assert directory.labels("Groups", filter_text.format_map(directory.values)) == set(
        expected.split()
    )


def test_filters_see_only_their_own_tenant(directory: Directory) -> None:
    assert directory.labels("Users", "userName pr", directory.literals) == set()
    assert directory.labels("Groups", 'displayName eq "Admins"', directory.literals) == set()


# -- string literals follow JSON (RFC 7644 §3.4.2.2 compValue) ------------------------------

LITERAL_NAMES = ['Sales "EMEA"', "CONTOSO\\jdoe", "café 😀", "a/b c", "\\uZZ",
                 "Team [ops] (east)", "x' or 1=1 --"]


@pytest.fixture(scope="module")
def literal_groups(directory: Directory) -> dict[str, str]:
    """Groups of tenant ``literals`` named with awkward literals: name -> id."""
    return {name: _created(directory.literals, "Groups", {"displayName": name})["id"]
            for name in LITERAL_NAMES}


@pytest.mark.parametrize(
    ("filter_text", "name"),
    [
        (r'displayName eq "Sales \"EMEA\""', 'Sales "EMEA"'),
        (r'displayName eq "CONTOSO\\jdoe"', "CONTOSO\\jdoe"),
        (r'displayName eq "CONTOSO\jdoe"', "CONTOSO\\jdoe"),  # unescaped: the backslash stays
        (r'displayName eq "caf\u00e9 \ud83d\ude00"', "café 😀"),
        (r'displayName eq "a\/b\u0020c"', "a/b c"),
        (r'displayName eq "\uZZ"', "\\uZZ"),
        ('displayName eq "Team [ops] (east)"', "Team [ops] (east)"),
        ('displayName eq "x\' or 1=1 --"', "x' or 1=1 --"),
    ],
)
def test_string_values_are_read_as_json_strings(
    directory: Directory, literal_groups: dict[str, str], filter_text: str, name: str
) -> None:
    assert directory.labels("Groups", filter_text, directory.literals) == {literal_groups[name]}


def test_values_are_bound_parameters_never_sql(directory: Directory) -> None:
    """A quote in a value cannot widen the result: nobody in acme has this name."""
    assert directory.labels("Users", 'displayName eq "x\' or 1=1 --"') == set()
    assert directory.labels("Users", 'userName eq "x\\" or 1=1 --"') == set()


# -- filters refused with 400 invalidFilter --------------------------------------------------


def _refused(client: httpx.Client, resource: str, filter_text: str) -> str:
    response = client.get(f"/{resource}", params={"filter": filter_text})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert (body["status"], body["scimType"]) == ("400", "invalidFilter")
    return str(body["detail"])


def test_an_empty_filter_parameter_is_no_filter(directory: Directory) -> None:
    """``filter=`` is read like an absent parameter; only blank text is refused (below)."""
    assert directory.labels("Users", "") == {"babs", "john", "pct"}


BAD_USER_FILTERS = [
    ("   ", "empty"),
    ('userName eq "' + "a" * 5000 + '"', "4096"),
    ("(" * 10_000 + 'userName eq "x"' + ")" * 10_000, "4096"),
    ("(" * 2000 + 'userName eq "x"' + ")" * 2000, "nested"),
    ("not (" * 600 + "title pr" + ")" * 600, "nested"),
    (" or ".join(['userName eq "a"'] * 201), "200 comparisons"),
    ('foo eq "x"', "'foo'"),
    ('urn:example:params:scim:schemas:Custom:foo eq "x"', "urn:example:params:scim:schemas:Custom"),
    ('name.nickname eq "x"', "'nickname'"),
    ('name eq "x"', "'name' is complex"),
    ('addresses eq "x"', "'addresses' is complex"),
    ('userName.value eq "x"', "'userName' has no sub-attributes"),
    ('userName[value eq "x"]', "'userName' is not complex"),
    ('emails[value[type eq "x"] eq "y"]', "cannot be nested"),
    ('emails[emails.value eq "y"]', "only its sub-attributes"),
    ('emails.nope eq "x"', "'nope'"),
    ('password eq "secret"', "'password'"),
    ('manager.displayName eq "x"', "manager.displayName"),
    ('meta.location eq "x"', "meta.location"),
    ('groups.$ref eq "x"', "groups.$ref"),
    ("userName", "ends too early"),
    ("userName eq", "ends too early"),
    ('userName eq "x" and', "ends too early"),
    ('(userName eq "x"', "ends too early"),
    ('emails[type eq "work"', "ends too early"),
    ('eq "x"', "unexpected 'eq' at character 1"),
    ('userName eq "x")', "unexpected ')'"),
    ('emails[type eq "work"]]', "unexpected ']'"),
    ("!!!", "unexpected character '!'"),
    ('userName eq "x', "never closed"),
    ('userName eq "x"\nor title pr', "unexpected character '\\n'"),
    ("userName eq j young", "unexpected 'j'"),
    ("active gt true", "'gt' cannot compare the boolean 'active'"),
    ('active co "t"', "boolean"),
    ('active eq "yes"', "true or false"),
    ("emails.primary lt false", "boolean 'emails.primary'"),
    ('meta.lastModified gt "yesterday"', "ISO 8601"),
    ("meta.lastModified gt 2024", "ISO 8601"),
    ('meta.created co "2024"', "dateTime"),
    ("userName eq null", "null"),
    ("title eq true", "not a boolean"),
    ('x509Certificates.value gt "a"', "binary"),
    (r'displayName eq "abc\"', "never closed"),
    (r'displayName eq "\ud800"', "unpaired"),
]


@pytest.mark.parametrize(("filter_text", "detail"), BAD_USER_FILTERS)
def test_bad_user_filter_is_400_invalid_filter(
    directory: Directory, filter_text: str, detail: str
) -> None:
    assert detail in _refused(directory.acme, "Users", filter_text)


@pytest.mark.parametrize(
    ("filter_text", "detail"),
    [
        ('manager eq "x"', "'manager'"),
        ('userName eq "x"', "'userName'"),
        ("members.nope pr", "'nope'"),
        ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x"', "URN"),
    ],
)
def test_bad_group_filter_is_400_invalid_filter(
    directory: Directory, filter_text: str, detail: str
) -> None:
    assert detail in _refused(directory.acme, "Groups", filter_text)


def test_random_token_soup_is_a_list_or_invalid_filter(directory: Directory) -> None:
    pieces = [
        *("userName", "emails", ".value", "[", "]", "(", ")", "eq", "co", "gt", "pr", "and"),
        *("or", "not", '"x"', '"%"', "true", "null", "7", "manager", "meta.created", '"'),
        *("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:", "type", " ", "\\"),
    ]
    rng = random.Random(7644)
    for _ in range(300):
        soup = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        response = directory.acme.get("/Users", params={"filter": soup})
        assert response.status_code in (200, 400), (soup, response.text)
        if response.status_code == 400:
            assert response.json()["scimType"] == "invalidFilter", soup


def test_username_eq_is_an_index_lookup(directory: Directory) -> None:
    """The list query the server runs for ``userName eq`` searches the unique index."""
    engine = directory.app.extensions["scim_bridge"].engine
    if engine.dialect.name != "sqlite":
        pytest.skip("the plan text checked here is SQLite's")
    statements: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        if "user_name_key" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        found = directory.labels("Users", 'userName eq "BJensen@example.com"')
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert found == {"babs"}
    assert statements, "no query compared user_name_key"
    with engine.connect() as connection:
        for statement, parameters in statements:
            plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "SEARCH users USING" in plan and "user_name_key=?" in plan, plan


# -- value filters in PATCH paths (the in-memory matching) -----------------------------------


def _user(directory: Directory, **document: Any) -> dict[str, Any]:
    return _created(directory.patching, "Users",
                    {"userName": f"{uuid.uuid4().hex}@patching.test", **document})


@pytest.mark.parametrize(
    ("value_filter", "element", "selected"),
    [
        ('type eq "work"', {"type": "work", "value": "a@x"}, True),
        ('type eq "work"', {"type": "Work", "value": "a@x"}, True),
        ('type eq "work"', {"type": "home", "value": "a@x"}, False),
        ('type eq "work"', {"value": "a@x"}, False),
        ('type ne "work"', {"value": "a@x"}, True),
        ('type eq "work" and value co "@X.ORG"', {"type": "work", "value": "a@x.org"}, True),
        ('type eq "work" and value co "@y"', {"type": "work", "value": "a@x.org"}, False),
        ('type eq "home" or type eq "work" and value eq "zzz"', {"type": "home", "value": "h"},
         True),
        ("primary eq true", {"value": "a", "primary": True}, True),
        ('primary eq "True"', {"value": "a", "primary": True}, True),
        ("primary eq true", {"value": "a"}, False),
        ("not (primary eq true)", {"value": "a"}, True),
        ("value pr", {"value": "a"}, True),
        ("display pr", {"value": "a"}, False),
        ('value sw "A" and value ew "Z"', {"value": "abcz"}, True),
        ("type eq work", {"type": "work", "value": "w"}, True),
        (r'value eq "a\"]b" and type eq "work"', {"value": 'a"]b', "type": "work"}, True),
    ],
)
def test_patch_remove_by_value_filter_removes_what_it_selects(
    directory: Directory, value_filter: str, element: dict, selected: bool
) -> None:
    user = _user(directory, emails=[element])
    response = directory.patching.patch(
        f"/Users/{user['id']}", json=patch({"op": "remove", "path": f"emails[{value_filter}]"})
    )
    assert response.status_code == 200, response.text
    assert ("emails" not in response.json()) is selected
    assert ("emails" not in _read(directory.patching, "Users", user["id"])) is selected


def test_patch_value_filter_honours_case_exact_sub_attributes(directory: Directory) -> None:
    """photos.value is a caseExact reference; member values are ids, compared exactly."""
    user = _user(directory, photos=[{"value": "http://a", "type": "photo"}])
    upper = patch({"op": "remove", "path": 'photos[value eq "HTTP://A"]'})
    assert directory.patching.patch(f"/Users/{user['id']}", json=upper).status_code == 200
    assert _read(directory.patching, "Users", user["id"])["photos"] == user["photos"]

    group = _created(directory.patching, "Groups",
                     {"displayName": uuid.uuid4().hex, "members": [{"value": user["id"]}]})
    for value, remaining in [(user["id"].upper(), [user["id"]]), (user["id"], [])]:
        remove = patch({"op": "remove", "path": f'members[value eq "{value}"]'})
        assert directory.patching.patch(f"/Groups/{group['id']}", json=remove).status_code == 204
        members = _read(directory.patching, "Groups", group["id"]).get("members", [])
        assert [member["value"] for member in members] == remaining


def test_patch_path_brackets_skip_escaped_quotes(directory: Directory) -> None:
    user = _user(directory, emails=[{"value": 'a"]b', "type": "work"},
                                    {"value": "other@x", "type": "home"}])
    operation = {"op": "replace", "path": r'emails[value eq "a\"]b"].display', "value": "D"}
    response = directory.patching.patch(f"/Users/{user['id']}", json=patch(operation))
    assert response.status_code == 200, response.text
    assert response.json()["emails"] == [{"value": 'a"]b', "type": "work", "display": "D"},
                                         {"value": "other@x", "type": "home"}]


@pytest.mark.parametrize(
    ("value_filter", "detail"),
    [
        ('nope eq "x"', "'nope'"),
        ("primary gt true", "boolean"),
        ('type eq "work" or nope eq "x"', "'nope'"),
        ('value.sub eq "x"', "sub-attributes"),
        ("type eq", "ends too early"),
    ],
)
def test_patch_with_a_bad_value_filter_is_400_and_changes_nothing(
    directory: Directory, value_filter: str, detail: str
) -> None:
    user = _user(directory, emails=[{"type": "work", "value": "w@x"}])
    response = directory.patching.patch(
        f"/Users/{user['id']}", json=patch({"op": "remove", "path": f"emails[{value_filter}]"})
    )
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidPath"  # RFC 7644 §3.12: a PATCH path
    assert detail in response.json()["detail"]
    assert _read(directory.patching, "Users", user["id"]) == user
