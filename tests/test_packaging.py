"""The built wheel holds what an installed bridge needs at run time, and declares the
dependencies it imports (and only those) in its base requirements."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a clean copy of the source (no build/ or egg-info left behind)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "scim_bridge", source / "scim_bridge",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(source), "-w", str(out)],
        capture_output=True, text=True, timeout=180,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("scim_bridge-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_the_migrations_their_template_and_py_typed(wheel):
    names = set(wheel.namelist())
    migrations = sorted(p.relative_to(ROOT).as_posix()
                        for p in (ROOT / "scim_bridge" / "migrations").rglob("*.py"))
    assert migrations and set(migrations) <= names
    assert "scim_bridge/migrations/script.py.mako" in names
    assert "scim_bridge/py.typed" in names


def _requirements(wheel: zipfile.ZipFile) -> list[str]:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(metadata).decode()).get_all("Requires-Dist") or []


def test_the_base_requirements_are_what_the_package_imports(wheel):
    base = {r.split(";")[0].replace(" ", "") for r in _requirements(wheel) if "extra" not in r}
    names = {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0] for r in base}
    assert "click" in names
    assert "python-jose[cryptography]>=3.4" in base  # 3.3: CVE-2024-33663, CVE-2024-33664
    assert any(r.startswith("scim2-filter-parser") and "<0.8" in r for r in base)
    assert "psycopg" not in names
    assert "httpx" in names  # the delivery worker's HTTP client


def test_postgres_is_an_extra_that_dev_includes(wheel):
    requirements = _requirements(wheel)
    assert any(r.startswith("psycopg[binary]") and 'extra == "postgres"' in r
               for r in requirements)
    assert any(r.startswith("scim-bridge[postgres]") and 'extra == "dev"' in r
               for r in requirements)
    assert any(r.startswith("httpx") and 'extra == "dev"' in r for r in requirements)


def test_redis_is_an_extra_that_dev_includes(wheel):
    requirements = _requirements(wheel)
    assert any(r.startswith("redis") and 'extra == "redis"' in r for r in requirements)
    assert any(r.startswith("scim-bridge[redis]") and 'extra == "dev"' in r
               for r in requirements)


def test_the_package_never_imports_httpx_or_psycopg_at_import_time():
    probe = ("import sys; import scim_bridge.cli, scim_bridge.app; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in {'httpx', 'psycopg'}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
