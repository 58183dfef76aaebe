"""The admin page in a real browser: Playwright driving the system Chromium against a real
``scim-bridge serve``. One server and one browser for the module; each test opens its own
browser context (its own cookies) and uses its own users, so the order does not matter.

Without Chromium (or Playwright) the tests skip with the reason; ``SCIM_BRIDGE_REQUIRE_BROWSER=1``
(set by ``.ci/run``) makes them fail instead. Screenshots go to ``SCIM_BRIDGE_SCREENSHOTS``
(default: ``scim-bridge-screenshots`` in the temporary directory).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .live import LiveServer, serve, session_is_active, unique
from .scimdata import patch, user_body

CHROMIUM = os.environ.get("SCIM_BRIDGE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("SCIM_BRIDGE_SCREENSHOTS")
             or Path(tempfile.gettempdir()) / "scim-bridge-screenshots")
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
NIGHT_SHIFT = 300


def _no_browser(reason: str) -> None:
    if os.environ.get("SCIM_BRIDGE_REQUIRE_BROWSER"):
        pytest.fail(reason)
    pytest.skip(reason)


try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        _no_browser("the playwright package is not installed (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        _no_browser(f"no Chromium at {CHROMIUM}: apt-get install -y --no-install-recommends "
                    "chromium fonts-liberation")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@dataclass
class Site:
    """The running bridge, its tokens, and the people the tests act on."""

    server: LiveServer
    admin_token: str
    other_tenant_token: str
    scim: httpx.Client
    app: httpx.Client
    users: dict[str, str] = field(default_factory=dict)  # userName -> id
    groups: dict[str, str] = field(default_factory=dict)  # displayName -> id
    sessions: dict[str, list[str]] = field(default_factory=dict)  # userName -> session tokens

    def add_user(self, name: str, sessions: int = 0, clients: tuple[str, ...] = ("web",)) -> str:
        response = self.scim.post("/Users", json=user_body(name))
        assert response.status_code == 201, response.text
        user_id = self.users[name] = response.json()["id"]
        self.sessions[name] = [self.start(user_id, clients[i % len(clients)])
                               for i in range(sessions)]
        return user_id

    def start(self, user_id: str, client: str = "web") -> str:
        response = self.app.post("/sessions", json={"user_id": user_id, "client": client})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def add_group(self, name: str, members: list[str]) -> str:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name,
                "members": [{"value": self.users[m]} for m in members]}
        response = self.scim.post("/Groups", json=body)
        assert response.status_code == 201, response.text
        self.groups[name] = response.json()["id"]
        return self.groups[name]

    def live(self, name: str) -> list[bool]:
        return [session_is_active(self.app, token) for token in self.sessions[name]]

    def scim_user(self, name: str) -> dict[str, Any]:
        response = self.scim.get(f"/Users/{self.users[name]}")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def site(browser: Browser) -> Iterator[Site]:
    with serve() as server:
        admin_token = server.cli("token", "create", "--name", "console", "--scope", "admin")
        server.cli("tenant", "create", "clinic-b")
        other = server.cli("token", "create", "--name", "b-console", "--scope", "admin",
                           "--tenant", "clinic-b")
        with server.client({}) as scim, server.application() as app:
            site = Site(server, admin_token, other, scim, app)
            _populate(site)
            yield site


def _populate(site: Site) -> None:
    site.add_user("rowan@example.com", sessions=2, clients=("web", "mobile"))
    site.add_user("erin@example.com", sessions=1)
    site.add_user("search-target@example.com", sessions=1)
    for name, count in (("bulk-a@example.com", 1), ("bulk-b@example.com", 1),
                        ("bulk-c@example.com", 2), ("bulk-d@example.com", 1)):
        site.add_user(name, sessions=count)
    site.add_user("keys@example.com", sessions=1)
    site.add_user("history@example.com", sessions=2)
    site.add_user("narrow@example.com", sessions=1)
    site.add_group("Ward 7", ["rowan@example.com", "search-target@example.com"])
    site.add_group("Radiology", ["rowan@example.com", "erin@example.com"])
    site.add_group("Bulk team", ["bulk-a@example.com", "bulk-b@example.com",
                                 "bulk-c@example.com", "bulk-d@example.com"])
    site.add_group("Oncology", ["history@example.com"])
    # Night shift: hundreds of users in one request, twelve of them signed in.
    operations = [{"method": "POST", "path": "/Users", "bulkId": f"n{i}",
                   "data": user_body(f"night-{i:03d}@example.com")} for i in range(NIGHT_SHIFT)]
    response = site.scim.post("/Bulk", content=json.dumps({"schemas": [BULK],
                                                           "Operations": operations}),
                              headers={"Content-Type": "application/scim+json"})
    assert response.status_code == 200, response.text
    night = [result["location"].rsplit("/", 1)[1] for result in response.json()["Operations"]]
    assert len(night) == NIGHT_SHIFT
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Night shift", "members": [{"value": uid} for uid in night]}
    assert site.scim.post("/Groups", json=body).status_code == 201
    site.sessions["night"] = [site.start(uid) for uid in night[:12]]
    # The history user: the IdP removes them from a group (ending both sessions); they sign in
    # again, and an admin forces a logout through the API.
    removal = patch({"op": "remove",
                     "path": f'members[value eq "{site.users["history@example.com"]}"]'})
    assert site.scim.patch(f"/Groups/{site.groups['Oncology']}", json=removal).status_code in (
        200, 204)
    site.sessions["history@example.com"].append(site.start(site.users["history@example.com"],
                                                           "mobile"))
    with httpx.Client(base_url=f"{site.server.base_url}/api/v1/admin", timeout=30,
                      headers={"Authorization": f"Bearer {site.admin_token}"}) as admin:
        forced = admin.post(f"/users/{site.users['history@example.com']}/force-logout")
        assert forced.status_code == 200 and forced.json()["revoked_sessions"] == 1
    # A failed SCIM request for the request log.
    assert site.scim.get("/Users/no-such-user").status_code == 404


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    context = browser.new_context(base_url=site.server.base_url)
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, token: str) -> None:
    page.goto("/admin/")
    expect(page).to_have_url(f"{_base(page)}/admin/sign-in")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def _base(page: Page) -> str:
    return page.url.split("/admin", 1)[0]


def shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def row(page: Page, user_name: str):  # type: ignore[no-untyped-def]
    return page.locator("tr", has=page.get_by_label(f"Select {user_name}", exact=True))


def test_sign_in_lands_on_user_management(page: Page, site: Site) -> None:
    sign_in(page, site.admin_token)
    expect(page.get_by_role("heading", name="User Management")).to_be_visible()
    expect(page.get_by_label("Search users")).to_be_visible()
    expect(page.get_by_role("button", name="Bulk User Logout")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"].startswith("__Host-"))
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/" and cookie["expires"] > 0
    page.set_viewport_size({"width": 1280, "height": 900})
    shoot(page, "user-management")


def test_search_finds_one_user_and_is_bookmarkable(page: Page, site: Site) -> None:
    sign_in(page, site.admin_token)
    page.get_by_label("Search users").fill("search-t")
    page.get_by_label("Search users").press("Enter")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row(page, "search-target@example.com")).to_contain_text("Ward 7")
    assert "search=search-t" in page.url
    page.goto(page.url)  # the bookmark shows the same result
    expect(page.get_by_label("Search users")).to_have_value("search-t")
    expect(page.locator("tbody tr")).to_have_count(1)


def test_the_group_filter_shows_only_its_members(page: Page, site: Site) -> None:
    sign_in(page, site.admin_token)
    page.get_by_label("Group").select_option(label="Radiology")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(row(page, "rowan@example.com")).to_be_visible()
    expect(row(page, "erin@example.com")).to_be_visible()
    expect(page.get_by_text("2 users match")).to_be_visible()


def test_row_arrow_force_logs_out_one_user_without_changing_access(page: Page,
                                                                   site: Site) -> None:
    sign_in(page, site.admin_token)
    page.get_by_label("Search users").fill("rowan")
    page.get_by_label("Search users").press("Enter")
    arrow = page.get_by_role("button", name="Force logout rowan@example.com")
    expect(arrow).to_be_hidden()
    row(page, "rowan@example.com").hover()
    expect(arrow).to_be_visible()
    expect(row(page, "rowan@example.com").locator("[data-count]")).to_contain_text("2")
    groups_before = {g["value"] for g in site.scim_user("rowan@example.com")["groups"]}
    arrow.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Log out 1 user and end 2 sessions?")
    expect(dialog).to_contain_text("Access and group memberships do not change")
    assert site.live("rowan@example.com") == [True, True], "the preview ended nothing"
    dialog.get_by_role("button", name="Log out 1 user", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Logged out 1 user, 2 sessions ended.")
    expect(row(page, "rowan@example.com").locator("[data-count]")).to_have_text("0")
    assert site.live("rowan@example.com") == [False, False]
    after = site.scim_user("rowan@example.com")
    assert after["active"] is True
    assert {g["value"] for g in after["groups"]} == groups_before == {
        site.groups["Ward 7"], site.groups["Radiology"]}


def test_bulk_user_logout_of_several_shows_the_counts_then_the_result(page: Page,
                                                                       site: Site) -> None:
    sign_in(page, site.admin_token)
    page.get_by_label("Group").select_option(label="Bulk team")
    page.get_by_role("button", name="Search", exact=True).click()
    for name in ("bulk-a", "bulk-b", "bulk-c"):
        page.get_by_label(f"Select {name}@example.com").check()
    page.get_by_role("button", name="Bulk User Logout").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Log out 3 users and end 4 sessions?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    shoot(page, "bulk-user-logout-dialog")
    dialog.get_by_role("button", name="Log out 3 users").click()
    expect(page.get_by_role("status")).to_have_text("Logged out 3 users, 4 sessions ended.")
    for name in ("bulk-a", "bulk-b", "bulk-c"):
        expect(row(page, f"{name}@example.com").locator("[data-count]")).to_have_text("0")
        assert not any(site.live(f"{name}@example.com"))
    expect(row(page, "bulk-d@example.com").locator("[data-count]")).to_have_text("1")
    assert site.live("bulk-d@example.com") == [True], "an unchecked row keeps its session"


def test_cancel_ends_nothing(page: Page, site: Site) -> None:
    sign_in(page, site.admin_token)
    page.get_by_label("Search users").fill("bulk-d")
    page.get_by_label("Search users").press("Enter")
    page.get_by_label("Select bulk-d@example.com").check()
    page.get_by_role("button", name="Bulk User Logout").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert site.live("bulk-d@example.com") == [True]


def test_select_all_matching_acts_on_the_whole_filter_of_hundreds(page: Page,
                                                                   site: Site) -> None:
    sign_in(page, site.admin_token)
    page.get_by_label("Group").select_option(label="Night shift")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(50)  # one server-side page
    page.get_by_label(f"Select all {NIGHT_SHIFT} matching").check()
    page.get_by_role("button", name="Bulk User Logout").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text(
        f"Log out {NIGHT_SHIFT} users and end 12 sessions?")
    dialog.get_by_role("button", name=f"Log out {NIGHT_SHIFT} users").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Logged out {NIGHT_SHIFT} users, 12 sessions ended.")
    assert not any(session_is_active(site.app, token) for token in site.sessions["night"])
    expect(row(page, "rowan@example.com")).to_have_count(0)


def test_a_change_posted_without_the_csrf_token_is_refused(page: Page, site: Site) -> None:
    sign_in(page, site.admin_token)
    response = page.request.post("/admin/logout/preview", form={"all_matching": "1"},
                                 headers={"Accept": "application/json"})
    assert response.status == 400 and response.json()["error"] == "csrf_failed"
    response = page.request.post("/admin/logout", headers={"Accept": "application/json"},
                                 form={"only": site.users["keys@example.com"], "confirm": "1.x"})
    assert response.status == 400
    assert site.live("keys@example.com") == [True]


@pytest.mark.parametrize("scope", ["scim", "sessions"])
def test_a_scim_or_sessions_token_cannot_sign_in(page: Page, site: Site, scope: str) -> None:
    token = site.server.cli("token", "create", "--name", unique(scope), "--scope", scope)
    sign_in(page, token)
    expect(page.get_by_role("alert")).to_contain_text("needs a token with scope 'admin'")
    page.goto("/admin/")
    expect(page).to_have_url(f"{site.server.base_url}/admin/sign-in")


def test_an_admin_of_another_tenant_never_sees_these_users(page: Page, site: Site) -> None:
    sign_in(page, site.other_tenant_token)
    expect(page.get_by_text("Tenant clinic-b")).to_be_visible()
    expect(page.get_by_text("0 users match")).to_be_visible()
    page.get_by_label("Search users").fill("rowan")
    page.get_by_label("Search users").press("Enter")
    expect(page.locator("tbody")).to_contain_text("No user matches")
    expect(page.get_by_label("Group").locator("option")).to_have_count(1)
    response = page.goto(f"/admin/users/{site.users['rowan@example.com']}")
    assert response is not None and response.status == 404


def test_keyboard_only_sign_in_search_and_force_logout(page: Page, site: Site) -> None:
    page.goto("/admin/")
    expect(page.get_by_label("Admin token")).to_be_focused()  # autofocus
    page.keyboard.type(site.admin_token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="User Management")).to_be_visible()
    search = page.get_by_label("Search users")
    for _ in range(12):  # tab through the header to the search box
        page.keyboard.press("Tab")
        if search.evaluate("el => el === document.activeElement"):
            break
    expect(search).to_be_focused()
    page.keyboard.type("keys@")
    page.keyboard.press("Enter")
    expect(page.locator("tbody tr")).to_have_count(1)
    check = page.get_by_label("Select keys@example.com")
    arrow = page.get_by_role("button", name="Force logout keys@example.com")
    for _ in range(20):
        page.keyboard.press("Tab")
        if check.evaluate("el => el === document.activeElement"):
            break
    expect(check).to_be_focused()
    expect(arrow).to_be_visible()  # focus within the row reveals it
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="keys@example.com")).to_be_focused()
    expect(arrow).to_be_visible()
    page.keyboard.press("Tab")
    expect(arrow).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Log out 1 user")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Logged out 1 user, 1 session ended.")
    expect(arrow).to_be_focused()  # focus returns to what opened the dialog
    assert site.live("keys@example.com") == [False]


def test_the_user_page_shows_ended_sessions_and_the_access_timeline(page: Page,
                                                                     site: Site) -> None:
    sign_in(page, site.admin_token)
    page.get_by_role("link", name="history@example.com").click()
    expect(page.get_by_role("heading", name="history@example.com")).to_be_visible()
    sessions = page.locator("table.sessions tbody tr")
    expect(sessions).to_have_count(3)
    expect(sessions.nth(0)).to_contain_text("mobile")
    expect(sessions.nth(0)).to_contain_text("Forced logout")
    expect(sessions.nth(0)).to_contain_text("by admin console")
    expect(sessions.nth(1)).to_contain_text("Removed from group: removed from group 'Oncology'")
    expect(sessions.nth(1)).to_contain_text("by IdP token")
    timeline = page.locator("ol.timeline li")
    expect(timeline.nth(0)).to_contain_text("Forced logout")
    expect(timeline.nth(0)).to_contain_text("admin console")
    expect(timeline.nth(1)).to_contain_text("Removed from group")
    expect(timeline.nth(1)).to_contain_text("Oncology")
    expect(timeline.nth(1)).to_contain_text("2 sessions ended")
    expect(page.get_by_role("region", name="Groups")).to_contain_text("Member of no group")
    shoot(page, "user-page")


def test_the_events_page_shows_every_revocation_and_explains_failed_requests(
        page: Page, site: Site) -> None:
    sign_in(page, site.admin_token)
    page.get_by_role("link", name="Events").click()
    events = page.locator("table.events")
    expect(events).to_contain_text("Removed from group: removed from group 'Oncology'")
    expect(events).to_contain_text("IdP token")
    expect(events).to_contain_text("Forced logout")
    expect(events).to_contain_text("admin console")
    page.get_by_label("Status").select_option(label="Failures")
    page.get_by_role("button", name="Filter").click()
    requests = page.locator("table.requests tbody tr")
    expect(requests.first).to_contain_text("404")
    for status in requests.locator("td:nth-child(3)").all_inner_texts():
        assert int(status) >= 400


def test_without_script_the_row_arrow_leads_to_a_confirmation_page(browser: Browser,
                                                                    site: Site) -> None:
    context = browser.new_context(base_url=site.server.base_url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, site.admin_token)
        page.get_by_label("Search users").fill("narrow")
        page.get_by_role("button", name="Search", exact=True).click()
        row(page, "narrow@example.com").hover()
        page.get_by_role("button", name="Force logout narrow@example.com").click()
        expect(page.get_by_role("heading")).to_have_text("Log out 1 user and end 1 session?")
        page.get_by_role("button", name="Log out 1 user").click()
        expect(page.get_by_role("status")).to_have_text("Logged out 1 user, 1 session ended")
        assert site.live("narrow@example.com") == [False]
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/admin/", "/admin/?group=Night+shift", "/admin/events",
                                  "user", "dialog"])
def test_no_serious_or_critical_accessibility_violation(page: Page, site: Site,
                                                        path: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    sign_in(page, site.admin_token)
    if path == "user":
        page.goto(f"/admin/users/{site.users['history@example.com']}")
    elif path == "dialog":
        page.get_by_label("Select erin@example.com").check()
        page.get_by_role("button", name="Bulk User Logout").click()
        expect(page.get_by_role("dialog")).to_be_visible()
    else:
        page.goto(path)
    violations = Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"], v["help"]) for v in violations
           if v["impact"] in ("serious", "critical")]
    assert not bad, bad


def test_the_sign_in_page_passes_the_audit_too(page: Page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page.goto("/admin/sign-in")
    violations = Axe().run(page).response["violations"]
    assert not [v["id"] for v in violations if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("path", ["/admin/", "user", "/admin/events"])
def test_readable_at_375_px_without_horizontal_page_scroll(browser: Browser, site: Site,
                                                           path: str) -> None:
    context = browser.new_context(base_url=site.server.base_url, has_touch=True, is_mobile=True,
                                  viewport={"width": 375, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, site.admin_token)
        page.goto(f"/admin/users/{site.users['history@example.com']}" if path == "user"
                  else path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways: {width} px wide"
        if path == "/admin/":
            # On a touch screen the row arrow is always there, no hover needed.
            expect(page.get_by_role("button", name="Force logout erin@example.com")) \
                .to_be_visible()
            shoot(page, "user-management-375px")
    finally:
        context.close()
