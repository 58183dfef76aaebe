"""The page's blueprint and what each of its views shares: who is signed in, and answering
HTML or, for the page's own script, JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, render_template, request

PREFIX = "/admin"

bp = Blueprint("admin_page", __name__, url_prefix=PREFIX, template_folder="templates",
               static_folder="static")


def wants_json() -> bool:
    """The page's script asks for JSON; a form posted without script gets HTML."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def page(template: str, http_status: int = 200, **context: Any) -> tuple[str, int]:
    return (render_template(f"admin/{template}", principal=g.get("principal"), **context),
            http_status)


def answer(status: int, message: str, error: str = "invalid_request") -> Response:
    """A refusal in the caller's format: the page's error template, or the API's JSON shape."""
    if wants_json():
        response = jsonify({"error": error, "error_description": message})
    else:
        body, _ = page("error.html", message=message, status_code=status)
        response = Response(body, mimetype="text/html")
    response.status_code = status
    return response
