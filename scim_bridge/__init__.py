"""scim-bridge: a SCIM 2.0 bridge that revokes sessions the moment access changes."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
