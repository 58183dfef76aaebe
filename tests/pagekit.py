"""Helpers of the admin page tests: read the page's CSRF token, sign in with a token, and post
the page's forms, through Flask's test client (which keeps ``Secure`` cookies over http)."""

from __future__ import annotations

import re
from typing import Any

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def sign_in(client: Any, token: str) -> Any:
    """POST the sign-in form with ``token``; returns the response (303 on success)."""
    form = client.get("/admin/sign-in")
    assert form.status_code == 200, form.text
    return client.post("/admin/sign-in", data={"token": token,
                                               "csrf_token": csrf_of(form.text)})


def page_csrf(client: Any, path: str = "/admin/") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)
