"""A CORS policy compiled from a `cors:` section, global or per rule (the check is `checks/cors.py`).

Bastion owns CORS for a request when a policy applies to it: the upstream's own `Access-Control-*`
fields are dropped and Bastion's are set, so a response never carries two (the duplicate-header
bugs of Traefik #5567/#6014 come from merging both). Origins are matched exactly (a frozenset) or
by patterns that must match the whole origin; pattern results are cached in a bounded dict, so an
origin costs one lookup after its first request.

>>> p = CorsPolicy(Cors(allow_origins=("https://app.example",), allow_credentials=True))
>>> p.allows("https://app.example"), p.allows("https://evil.example"), p.vary
(True, False, True)
"""

from __future__ import annotations

import re

from proxy.config_hardening import Cors

ALLOW_ORIGIN = "Access-Control-Allow-Origin"
# Every response field of the CORS protocol (Fetch §3.2.3), and Private Network Access's.
RESPONSE_FIELDS = (
    ALLOW_ORIGIN,
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
    "Access-Control-Allow-Private-Network",
)
RESPONSE_FIELDS_LOWER = frozenset(f.lower() for f in RESPONSE_FIELDS)
_CACHE_MAX = 1024


class CorsPolicy:
    """Lookup data for one `cors:` section; nothing here is recomputed per request."""

    __slots__ = (
        "exact",
        "patterns",
        "any_origin",
        "wildcard",
        "vary",
        "actual",
        "methods",
        "any_method",
        "headers",
        "any_header",
        "preflight",
        "_seen",
    )

    def __init__(self, cfg: Cors) -> None:
        self.any_origin = "*" in cfg.allow_origins
        self.exact = frozenset(o for o in cfg.allow_origins if o != "*")
        self.patterns = tuple(re.compile(p) for p in cfg.allow_origin_patterns)
        # `*` is sent literally only without credentials (refused at load otherwise); then the answer
        # does not depend on Origin and caches need no `Vary: Origin`
        self.wildcard = self.any_origin and not cfg.allow_credentials
        self.vary = not self.wildcard
        actual: list[tuple[str, str]] = []
        if cfg.allow_credentials:
            actual.append(("Access-Control-Allow-Credentials", "true"))
        if cfg.expose_headers:
            actual.append(("Access-Control-Expose-Headers", ", ".join(cfg.expose_headers)))
        self.actual = tuple(actual)
        self.any_method = "*" in cfg.allow_methods
        self.methods = frozenset(cfg.allow_methods)
        self.any_header = "*" in cfg.allow_headers
        self.headers = frozenset(h.lower() for h in cfg.allow_headers)
        preflight = [
            ("Access-Control-Allow-Methods", ", ".join(cfg.allow_methods)),
            ("Access-Control-Max-Age", str(int(cfg.max_age))),
        ]
        if cfg.allow_headers:
            preflight.append(("Access-Control-Allow-Headers", ", ".join(cfg.allow_headers)))
        self.preflight = tuple(preflight)
        self._seen: dict[str, bool] = {}

    def allows(self, origin: str) -> bool:
        if self.any_origin:
            return True
        if origin in self.exact:
            return True
        if not self.patterns:
            return False
        hit = self._seen.get(origin)
        if hit is None:
            if len(self._seen) >= _CACHE_MAX:  # bounded: random origins cannot grow it
                self._seen.clear()
            hit = self._seen[origin] = any(p.fullmatch(origin) for p in self.patterns)
        return hit

    def allows_method(self, method: str) -> bool:
        return self.any_method or method in self.methods

    def refused_headers(self, requested: str) -> list[str]:
        """The names in an `Access-Control-Request-Headers` value this policy does not allow."""
        if self.any_header or not requested:
            return []
        return [n for n in (t.strip().lower() for t in requested.split(",")) if n and n not in self.headers]


def compile_cors(cfg: Cors | None) -> CorsPolicy | None:
    return None if cfg is None else CorsPolicy(cfg)
