"""scim-bridge: a SCIM 2.0 bridge that revokes sessions the moment access changes."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed distribution's version; pyproject.toml is its single source.
    __version__ = version("scim-bridge")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

from .app import create_app  # noqa: E402  (after __version__, which the CLI imports first)

__all__ = ["__version__", "create_app"]
