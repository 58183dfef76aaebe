"""SCIM filters (RFC 7644 §3.4.2.2) against a real database: which users and groups each filter
selects, which filters are refused with 400 invalidFilter, and in-memory value filters."""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from scim2_filter_parser import ast
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from scim_bridge.db import Base, make_engine
from scim_bridge.errors import InvalidFilter
from scim_bridge.models import Group, Membership, Tenant, User
from scim_bridge.scim import schema
from scim_bridge.scim.filter_syntax import parse
from scim_bridge.scim.filter_syntax import parse as parse_value_filter
from scim_bridge.scim.filters import evaluate
from scim_bridge.scim.formats import fold
from scim_bridge.scim.patch_paths import parse_path
from scim_bridge.store.filters import compile_filter
from scim_bridge.store.resources import apply_user_document

from .conftest import postgres_unreachable

PG_URL = os.environ.get(
    "SCIM_BRIDGE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ENTERPRISE = schema.ENTERPRISE_USER
URN = f"{ENTERPRISE}:"
BABS = "2819c223-7f76-453a-919d-413861904646"
JOHN = "0e1f5d9c-4b7a-4c2e-9a55-2b3c4d5e6f70"
PCT = "u-percent"
LABELS = {BABS: "babs", JOHN: "john", PCT: "pct"}

USERS: list[tuple[str, str, dict[str, Any]]] = [
    (
        BABS,
        "2024-01-01T00:00:00+00:00",
        {
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
            ENTERPRISE: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": JOHN},
            },
        },
    ),
    (
        JOHN,
        "2024-06-01T00:00:00+00:00",
        {
            "userName": "JSmith",
            "externalId": "JSMITH-1",
            "displayName": "John Smith",
            "active": True,
            "emails": [{"value": "John.Smith@Example.com", "type": "work"}],
            ENTERPRISE: {"department": "Sales"},
        },
    ),
    (
        PCT,
        "2025-01-01T00:00:00+00:00",
        {
            "userName": "100%_real",
            "externalId": "jyoung",
            "active": False,
            "emails": [{"value": "m@other.org", "type": "home"}],
        },
    ),
]
GROUPS = [
    ("g-admins", "Admins", "ext-admins", "2024-02-01T00:00:00+00:00", [BABS, JOHN]),
    ("g-guides", "Tour Guides", None, "2024-03-01T00:00:00+00:00", [BABS]),
    ("g-sales", "Sales_Team", None, "2024-04-01T00:00:00+00:00", [PCT]),
    ("g-empty", "Empty", None, "2024-05-01T00:00:00+00:00", []),
]


def _seed(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        _add_rows(session)
        session.commit()


def _add_rows(session: Session) -> None:
    tenant = Tenant(name="acme")
    session.add(tenant)
    session.flush()
    for user_id, modified, document in USERS:
        user = User(id=user_id, tenant_id=tenant.id)
        apply_user_document(user, document)
        user.created_at = user.last_modified = dt.datetime.fromisoformat(modified)
        session.add(user)
    for group_id, name, external_id, modified, members in GROUPS:
        moment = dt.datetime.fromisoformat(modified)
        session.add(
            Group(
                id=group_id,
                tenant_id=tenant.id,
                display_name=name,
                display_name_key=fold(name),
                external_id=external_id,
                created_at=moment,
                last_modified=moment,
            )
        )
        session.flush()
        session.add_all(Membership(group_id=group_id, user_id=member) for member in members)


@contextmanager
def _postgres_schema() -> Iterator[Engine]:
    """An engine on a throwaway schema of the test PostgreSQL; skips when it is unreachable."""
    name = f"filters_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        postgres_unreachable(f"PostgreSQL is not reachable at {PG_URL}: {exc.orig}")
    engine = create_engine(PG_URL, connect_args={"options": f"-c search_path={name}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """The same users and groups on SQLite and, when reachable, on PostgreSQL."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('filters')}/t.db")
        _seed(engine)
        yield engine
        engine.dispose()
        return
    with _postgres_schema() as engine:
        _seed(engine)
        yield engine


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


def users(session: Session, filter_text: str) -> set[str]:
    where = compile_filter(filter_text, schema.USER_TYPE)
    return {LABELS[user_id] for user_id in session.scalars(select(User.id).where(where))}


def groups(session: Session, filter_text: str) -> set[str]:
    where = compile_filter(filter_text, schema.GROUP_TYPE)
    return set(session.scalars(select(Group.id).where(where)))


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
    ("USERNAME eq \"jsmith\"", "john"),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "jsmith"', "john"),
    # logic, grouping and RFC precedence ("and" binds tighter than "or")
    ('userName eq "jsmith" or userName eq "bjensen@example.com"', "babs john"),
    ("active eq true and title pr", "babs"),
    ('active eq false or userName eq "jsmith" and userName eq "bjensen@example.com"', "pct"),
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
    (f'id eq "{BABS.upper()}"', ""),
    (f'id eq "{BABS}"', "babs"),
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
    ('phoneNumbers.value pr', ""),
    # single-valued complex attributes
    ('name.familyName eq "jensen"', "babs"),
    ('name.givenName sw "Bar"', "babs"),
    ("name pr", "babs"),
    ('name[givenName eq "barbara"]', "babs"),
    # enterprise extension, with and without its URN
    (URN + 'employeeNumber eq "701984"', "babs"),
    (URN + f'manager.value eq "{JOHN}"', "babs"),
    (f'manager eq "{JOHN}"', "babs"),
    (f'manager.value eq "{JOHN.upper()}"', ""),
    ("manager pr", "babs"),
    ('department eq "sales"', "john"),
    (URN + 'department co "TOUR"', "babs"),
    ('URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT eq "Sales"', "john"),
    # meta
    ('meta.lastModified gt "2024-03-01T00:00:00Z"', "john pct"),
    ('meta.lastModified ge "2024-06-01T00:00:00Z"', "john pct"),
    ('meta.lastModified gt "2024-05-31T20:00:00-05:00"', "pct"),
    ('meta.created lt "2024-01-02"', "babs"),
    ('meta.created eq "2024-01-01T00:00:00Z"', "babs"),
    ('meta.resourceType eq "User"', "babs john pct"),
    ('meta.resourceType eq "Group"', ""),
    # groups, derived from memberships
    ('groups.value eq "g-admins"', "babs john"),
    ('groups eq "g-guides"', "babs"),
    ('groups.display eq "tour guides"', "babs"),
    ('groups[display sw "sales"]', "pct"),
    ("groups pr", "babs john pct"),
    ('not (groups.value eq "g-admins")', "pct"),
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
    (f"id eq {BABS} and manager eq {JOHN}", "babs"),
    ("userName eq JSMITH", "john"),
    ("active eq True", "babs john"),
    ("employeeNumber eq 701984", "babs"),
    ('emails[type eq work].value eq "m@other.org"', ""),
    ('emails[type eq home].value eq "m@other.org"', "pct"),
]


@pytest.mark.parametrize(("filter_text", "expected"), USER_CASES)
def test_user_filter_selects(session: Session, filter_text: str, expected: str) -> None:
    assert users(session, filter_text) == set(expected.split())


GROUP_CASES = [
    ('displayName eq "admins"', "g-admins"),
    ('DisplayName eq "ADMINS"', "g-admins"),
    ('displayName co "_"', "g-sales"),
    ('displayName sw "t"', "g-guides"),
    ('displayName eq "Admins" or displayName eq "Empty"', "g-admins g-empty"),
    ('externalId eq "ext-admins"', "g-admins"),
    ('externalId eq "EXT-ADMINS"', ""),
    (f'members.value eq "{BABS}"', "g-admins g-guides"),
    (f'members eq "{JOHN}"', "g-admins"),
    (f'members[value eq "{JOHN}"]', "g-admins"),
    ('members.display eq "babs jensen"', "g-admins g-guides"),
    ('members.display eq "100%_REAL"', "g-sales"),
    ("members pr", "g-admins g-guides g-sales"),
    ("not (members pr)", "g-empty"),
    (f"id eq g-admins and members eq {BABS}", "g-admins"),
    ('meta.resourceType eq "Group"', "g-admins g-guides g-sales g-empty"),
    ('meta.lastModified lt "2024-03-15T00:00:00Z"', "g-admins g-guides"),
]


@pytest.mark.parametrize(("filter_text", "expected"), GROUP_CASES)
def test_group_filter_selects(session: Session, filter_text: str, expected: str) -> None:
    assert groups(session, filter_text) == set(expected.split())


BAD_USER_FILTERS = [
    ("", "empty"),
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
]


@pytest.mark.parametrize(("filter_text", "detail"), BAD_USER_FILTERS)
def test_bad_user_filter_is_invalid_filter(filter_text: str, detail: str) -> None:
    with pytest.raises(InvalidFilter) as raised:
        compile_filter(filter_text, schema.USER_TYPE)
    assert detail in raised.value.detail
    assert raised.value.scim_type == "invalidFilter"


@pytest.mark.parametrize(
    ("filter_text", "detail"),
    [
        ('manager eq "x"', "'manager'"),
        ('userName eq "x"', "'userName'"),
        ("members.nope pr", "'nope'"),
        ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x"', "URN"),
    ],
)
def test_bad_group_filter_is_invalid_filter(filter_text: str, detail: str) -> None:
    with pytest.raises(InvalidFilter) as raised:
        compile_filter(filter_text, schema.GROUP_TYPE)
    assert detail in raised.value.detail


def test_random_token_soup_is_a_clause_or_invalid_filter(session: Session) -> None:
    pieces = [
        *("userName", "emails", ".value", "[", "]", "(", ")", "eq", "co", "gt", "pr", "and"),
        *("or", "not", '"x"', '"%"', "true", "null", "7", "manager", "meta.created", '"'),
        *("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:", "type", " ", "\\"),
    ]
    rng = random.Random(7644)
    for _ in range(300):
        soup = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        try:
            where = compile_filter(soup, schema.USER_TYPE)
        except InvalidFilter:
            continue
        session.scalars(select(User.id).where(where)).all()


def test_username_eq_is_an_index_lookup(session: Session) -> None:
    if session.bind.dialect.name != "sqlite":
        pytest.skip("the plan text checked here is SQLite's")
    query = select(User.id).where(
        User.tenant_id == 1, compile_filter('userName eq "BJensen@example.com"', schema.USER_TYPE)
    )
    sql = str(query.compile(session.bind, compile_kwargs={"literal_binds": True}))
    plan = " ".join(row[-1] for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "SEARCH users USING" in plan and "user_name_key=?" in plan


def test_values_are_bound_parameters_never_sql() -> None:
    hostile = "x' or 1=1 --"
    compiled = compile_filter(f'displayName eq "{hostile}"', schema.USER_TYPE).compile()
    assert "1=1" not in str(compiled)
    assert hostile in compiled.params.values()


def test_parse_types_json_literals() -> None:
    def value_of(filter_text: str) -> Any:
        return parse(filter_text).expr.comp_value.value

    assert value_of("active eq true") is True
    assert value_of('active eq "true"') == "true"
    assert value_of("title eq null") is None
    assert value_of("employeeNumber eq 701984") == "701984"


def test_parse_keeps_rfc_precedence() -> None:
    tree = parse('a pr or b pr and c pr')
    assert isinstance(tree.expr, ast.LogExpr) and tree.expr.op == "or"


# -- evaluate(): the PATCH engine's value filters -------------------------------------------

EMAILS = schema.USER.attribute("emails")
PHOTOS = schema.USER.attribute("photos")
MEMBERS = schema.GROUP.attribute("members")


@pytest.mark.parametrize(
    ("value_filter", "element", "expected"),
    [
        ('type eq "work"', {"type": "work", "value": "a@x"}, True),
        ('type eq "work"', {"type": "Work", "value": "a@x"}, True),
        ('type eq "work"', {"type": "home", "value": "a@x"}, False),
        ('type eq "work"', {"value": "a@x"}, False),
        ('type ne "work"', {"value": "a@x"}, True),
        ('type eq "work" and value co "@X.ORG"', {"type": "work", "value": "a@x.org"}, True),
        ('type eq "work" and value co "@y"', {"type": "work", "value": "a@x.org"}, False),
        ('type eq "home" or type eq "work" and value eq "zzz"', {"type": "home"}, True),
        ("primary eq true", {"value": "a", "primary": True}, True),
        ('primary eq "True"', {"value": "a", "primary": True}, True),
        ("primary eq true", {"value": "a"}, False),
        ("not (primary eq true)", {"value": "a"}, True),
        ("value pr", {"value": ""}, False),
        ("value pr", {"value": "a"}, True),
        ('value sw "A" and value ew "Z"', {"value": "abcz"}, True),
        ("type eq work", {"type": "work"}, True),
    ],
)
def test_evaluate_email_value_filter(value_filter: str, element: dict, expected: bool) -> None:
    assert evaluate(parse_value_filter(value_filter), element, EMAILS) is expected


def test_evaluate_honours_case_exact_sub_attributes() -> None:
    same_id = parse_value_filter('value eq "abc"')
    upper_url = parse_value_filter('value eq "HTTP://A"')
    assert evaluate(upper_url, {"value": "http://a"}, PHOTOS) is False
    assert evaluate(same_id, {"value": "abc"}, MEMBERS) is True
    assert evaluate(same_id, {"value": "ABC"}, MEMBERS) is False


def test_evaluate_accepts_the_whole_value_path() -> None:
    node = parse('emails[type eq "work"]')
    assert isinstance(node.expr, ast.Filter) and node.expr.namespace.attr_name == "emails"
    assert evaluate(node, {"type": "work"}, EMAILS) is True
    assert evaluate(node.expr, {"type": "home"}, EMAILS) is False


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
def test_evaluate_refuses_bad_value_filters(value_filter: str, detail: str) -> None:
    with pytest.raises(InvalidFilter) as raised:
        evaluate(parse_value_filter(value_filter), {"type": "work"}, EMAILS)
    assert detail in raised.value.detail


# -- string literals follow JSON (RFC 7644 §3.4.2.2 compValue) ------------------------------


@pytest.mark.parametrize(
    ("filter_text", "value"),
    [
        (r'displayName eq "Sales \"EMEA\""', 'Sales "EMEA"'),
        (r'userName eq "CONTOSO\\jdoe"', "CONTOSO\\jdoe"),
        (r'userName eq "CONTOSO\jdoe"', "CONTOSO\\jdoe"),  # unescaped: the backslash stays
        (r'displayName eq "caf\u00e9 \ud83d\ude00"', "café 😀"),
        (r'displayName eq "a\/b\tc"', "a/b\tc"),
        (r'displayName eq "\uZZ"', "\\uZZ"),
        ('displayName eq "Team [ops] (east)"', "Team [ops] (east)"),
    ],
)
def test_string_values_are_read_as_json_strings(filter_text: str, value: str) -> None:
    assert parse(filter_text).expr.comp_value.value == value


def test_escaped_quote_in_a_value_filter_is_part_of_the_value() -> None:
    node = parse_value_filter(r'value eq "a\"]b" and type eq "work"')
    assert evaluate(node, {"value": 'a"]b', "type": "work"}, EMAILS) is True


@pytest.mark.parametrize(
    ("filter_text", "detail"),
    [(r'displayName eq "abc\"', "never closed"), (r'displayName eq "\ud800"', "unpaired")],
)
def test_bad_string_literals_are_invalid_filters(filter_text: str, detail: str) -> None:
    with pytest.raises(InvalidFilter) as raised:
        parse(filter_text)
    assert detail in raised.value.detail


def test_patch_path_brackets_skip_escaped_quotes() -> None:
    path = parse_path(r'emails[value eq "a\"]b"].display', schema.USER_TYPE)
    assert (path.attribute, path.sub_attribute) == ("emails", "display")
    assert path.value_filter.expr.comp_value.value == 'a"]b'
