"""The dependency direction of STYLE.md, and the OpenAPI spec against the real routes."""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize("path", _files("scim") + _files("services") + _files("revocation"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_edge_imports_flask(path: Path) -> None:
    assert not {name for name in _imports(path) if name.split(".")[0] == "flask"}


@pytest.mark.parametrize("path", _files("revocation"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_revocation_never_imports_services_or_endpoints(path: Path) -> None:
    upward = {n for n in _imports(path)
              if n.startswith(("scim_bridge.services", "scim_bridge.endpoints"))}
    assert not upward


@pytest.mark.parametrize("path", _files("scim"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_protocol_code_knows_no_services_or_endpoints(path: Path) -> None:
    upward = {n for n in _imports(path)
              if n.startswith(("scim_bridge.services", "scim_bridge.endpoints",
                               "scim_bridge.revocation"))}
    assert not upward


@pytest.mark.parametrize("path", _files("services"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_services_never_import_endpoints(path: Path) -> None:
    assert not {n for n in _imports(path) if n.startswith("scim_bridge.endpoints")}


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
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith("unknown_endpoint"):
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
