"""The dependency direction of STYLE.md, and the OpenAPI spec against the real routes."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
import yaml

PACKAGE = Path(__file__).resolve().parents[1] / "scim_bridge"
SPEC = Path(__file__).resolve().parents[1] / "openapi.yaml"


def _imports(path: Path) -> set[str]:
    """Absolute names of the package modules a file imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _files(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


#: (folders, what their modules must never import, why) — STYLE.md's dependency direction.
_RULES = [
    (("scim",), ("flask", "sqlalchemy", "scim_bridge.models", "scim_bridge.db",
                 "scim_bridge.store", "scim_bridge.services", "scim_bridge.revocation",
                 "scim_bridge.events", "scim_bridge.endpoints"),
     "scim/ is the protocol and stays pure"),
    (("store",), ("flask", "scim_bridge.services", "scim_bridge.revocation",
                  "scim_bridge.events", "scim_bridge.endpoints"),
     "store/ is SQL for the protocol, below services"),
    (("events",), ("flask", "scim_bridge.services", "scim_bridge.revocation",
                   "scim_bridge.endpoints"),
     "events/ records what services and the choke point tell it"),
    (("revocation",), ("flask", "scim_bridge.services", "scim_bridge.endpoints"),
     "revocation/ is called by services, never the other way"),
    (("services",), ("flask", "scim_bridge.endpoints", "scim_bridge.web"),
     "services take plain values and a database session, never a request"),
    (("web",), ("sqlalchemy", "scim_bridge.models", "scim_bridge.db", "scim_bridge.store"),
     "the page is a client of the services, not of the database"),
]
#: The request's transaction is the one place the edge holds a SQLAlchemy session itself.
_EDGE_HOLDS_THE_TRANSACTION = {"endpoints/transaction.py"}


def _violations(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        name for name in _imports(path)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden)
    )


_LAYERED = [
    (path, forbidden, why)
    for folders, forbidden, why in _RULES
    for folder in folders
    for path in _files(folder)
]


@pytest.mark.parametrize(("path", "forbidden", "why"), _LAYERED,
                         ids=[_name(path) for path, _, _ in _LAYERED])
def test_each_layer_imports_only_downward(path: Path, forbidden: tuple[str, ...], why: str):
    bad = _violations(path, forbidden)
    assert not bad, f"{_name(path)} imports {', '.join(bad)}: {why}"


@pytest.mark.parametrize("path", [p for p in _files("endpoints")
                                  if _name(p) not in _EDGE_HOLDS_THE_TRANSACTION],
                         ids=_name)
def test_endpoints_use_services_never_models_or_sqlalchemy(path: Path) -> None:
    bad = _violations(path, ("sqlalchemy", "scim_bridge.models", "scim_bridge.db",
                             "scim_bridge.store"))
    assert not bad, f"{_name(path)} imports {', '.join(bad)}: endpoints call services"


def test_the_app_module_is_only_the_factory() -> None:
    tree = ast.parse((PACKAGE / "app.py").read_text())
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert functions == ["create_app"] and classes == [], "app.py holds only create_app"


def test_no_view_or_hook_is_a_coroutine(app) -> None:
    """BridgeApp runs every view and hook as a plain call (no ``ensure_sync``)."""
    hooks = [*app.view_functions.values(), *app.teardown_appcontext_funcs]
    for registry in (app.before_request_funcs, app.after_request_funcs,
                     app.teardown_request_funcs):
        hooks.extend(func for funcs in registry.values() for func in funcs)
    hooks.extend(func for by_code in app.error_handler_spec.values()
                 for by_class in by_code.values() for func in by_class.values())
    assert hooks and not [func for func in hooks if inspect.iscoroutinefunction(func)]


def test_the_rules_catch_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a protocol module importing SQLAlchemy is named."""
    rogue = PACKAGE / "scim" / "_rogue_for_test.py"
    rogue.write_text("from sqlalchemy import select\nfrom ..models import User\n")
    try:
        assert _violations(rogue, _RULES[0][1]) == [
            "scim_bridge.models", "scim_bridge.models.User", "sqlalchemy", "sqlalchemy.select"
        ]
    finally:
        rogue.unlink()


def _spec_routes() -> set[tuple[str, str]]:
    spec = yaml.safe_load(SPEC.read_text())
    methods = {"get", "post", "put", "patch", "delete"}
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in methods
    }


def _app_routes(app) -> set[tuple[str, str]]:
    """Every API route; the admin page's HTML-only routes are pages, not API."""
    from scim_bridge.web import HTML_ROUTES

    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith("unknown_endpoint") \
                or rule.endpoint in HTML_ROUTES:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        path = re.sub(r"\{[a-z_]*id\}", "{id}", path)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method, path))
    return routes


def test_every_route_is_in_the_openapi_spec(app) -> None:
    missing = _app_routes(app) - _spec_routes()
    assert not missing, f"routes missing from openapi.yaml: {sorted(missing)}"


def test_the_openapi_spec_names_no_route_that_does_not_exist(app) -> None:
    stale = _spec_routes() - _app_routes(app)
    assert not stale, f"openapi.yaml describes routes the app lacks: {sorted(stale)}"
