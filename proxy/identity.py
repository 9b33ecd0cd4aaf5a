"""Who is calling: the verified identity that authentication hands to authorisation.

Plain data, built once per verified token (and cached with it), never from client headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    issuer: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    token_id: str | None = None
    expires_at: float = 0.0
    issued_at: float | None = None
