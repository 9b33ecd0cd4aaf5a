"""Demo upstream application protected by the Bastion sidecar (see README.md in this folder)."""

from __future__ import annotations

from upstream.app import create_app

__all__ = ["create_app"]
