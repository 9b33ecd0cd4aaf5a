"""The `headers:` and `cors:` configuration sections (global in config.yaml, per rule in rule files).

Kept out of `config.py` so that file stays a readable list of sections; `config.py` re-exports the
models. Everything that can be wrong is refused here, at load, with the key path to blame:
header names that are not RFC 9110 tokens, values with control characters (response splitting),
a header given two merge modes in one place, headers an override must never touch, and CORS
credentials with a wildcard.

>>> HeaderOverrides.model_validate({"set": {"X-Frame-Options": "SAMEORIGIN"}, "remove": ["X-Debug"]}).set_
{'X-Frame-Options': 'SAMEORIGIN'}
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from proxy.units import Duration

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
# SECURITY: RFC 9110 §5.5: a field value never holds CR, LF or NUL (response splitting)
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s@]+")
_HSTS = re.compile(r"max-age=\d+(\s*;\s*(includeSubDomains|preload))*", re.IGNORECASE)

# Fields no override may touch: framing and hop-by-hop fields belong to the connection, `Server`
# is never sent at all, and the CORS fields belong to `cors:` (two writers would mean two values).
RESERVED = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def _check_name(name: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    low = name.lower()
    if low in RESERVED:
        raise ValueError(f"{name} cannot be overridden (framing, hop-by-hop or never sent)")
    if low.startswith("access-control-"):
        raise ValueError(f"{name}: CORS headers are set by `cors:`, not by header overrides")
    return name


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeaderOverrides(Model):
    """Response-header operations with explicit semantics, applied after the profile defaults:
    `set` replaces whatever is there, `if_absent` keeps the upstream's own value, `append` adds one
    more field line, `remove` deletes the upstream's and any default."""

    set_: dict[str, str] = Field(default_factory=dict, alias="set")
    if_absent: dict[str, str] = Field(default_factory=dict)
    append: dict[str, str] = Field(default_factory=dict)
    remove: tuple[str, ...] = ()

    @field_validator("set_", "if_absent", "append")
    @classmethod
    def _pairs(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            _check_name(name)
            if not _VALUE.fullmatch(value):
                raise ValueError(f"value of {name} contains a control character")
        return v

    @field_validator("remove")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            _check_name(name)
        return v

    @model_validator(mode="after")
    def _one_mode(self) -> HeaderOverrides:
        seen: dict[str, str] = {}
        for mode, names in (("set", self.set_), ("if_absent", self.if_absent), ("append", self.append)):
            for name in names:
                if name.lower() in seen:
                    raise ValueError(f"{name} is given in both {seen[name.lower()]} and {mode}: one mode per header")
                seen[name.lower()] = mode
        for name in self.remove:
            if name.lower() in seen:
                raise ValueError(f"{name} is given in both {seen[name.lower()]} and remove: one mode per header")
        return self


class Headers(HeaderOverrides):
    """The global `headers:` section: a profile of OWASP defaults, HSTS, the leak list, and overrides."""

    profile: Literal["api", "html"] = "api"
    hsts: Literal["https", "always", "off"] = "https"  # https: when the original scheme was https
    hsts_value: str = "max-age=63072000; includeSubDomains"
    remove_leaky: bool = True  # strip the OWASP remove list (Server, X-Powered-By, ...) from upstream responses
    keep: tuple[str, ...] = ()  # names on the remove list to let through anyway (e.g. a trace id)

    @field_validator("hsts_value")
    @classmethod
    def _hsts(cls, v: str) -> str:
        if not _HSTS.fullmatch(v.strip()):
            raise ValueError("expected max-age=<seconds> with optional ; includeSubDomains ; preload")
        return v.strip()

    @field_validator("keep")
    @classmethod
    def _keep(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            _check_name(name)
        return v


class Cors(Model):
    """A CORS policy owned by Bastion. Origins are compared exactly (scheme, host and port, lower
    case) or against patterns that must match the whole origin (`re.fullmatch`)."""

    allow_origins: tuple[str, ...] = ()
    allow_origin_patterns: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ("GET", "HEAD", "POST")
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: Duration = 600.0

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for origin in v:
            low = origin.strip().lower()
            if low == "null":
                # SECURITY: sandboxed iframes, file: pages and some redirects all send `Origin: null`
                raise ValueError("the null origin is shared by every sandboxed document: never allow it")
            if low != "*" and not _ORIGIN.fullmatch(low):
                raise ValueError(f"invalid origin {origin!r} (scheme://host[:port], no path or trailing slash)")
            out.append(low)
        if "*" in out and len(out) > 1:
            raise ValueError("'*' allows every origin: list no others with it")
        return tuple(dict.fromkeys(out))

    @field_validator("allow_origin_patterns")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in v:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
            if compiled.fullmatch("null"):
                raise ValueError(f"{pattern!r} matches the null origin: never allow it")
        return v

    @field_validator("allow_methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for m in v:
            if m != "*" and not _TOKEN.fullmatch(m):
                raise ValueError(f"invalid method {m!r}")
        return tuple(dict.fromkeys(m.upper() for m in v))

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _headers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for h in v:
            if h != "*" and not _TOKEN.fullmatch(h):
                raise ValueError(f"invalid header name {h!r}")
        return v

    @field_validator("allow_credentials")
    @classmethod
    def _credentials(cls, v: bool, info: ValidationInfo) -> bool:
        # A field validator (declared after the lists, so they are in `info.data`) rather than a model
        # validator, so that the error names cors.allow_credentials and its line.
        # SECURITY: Fetch standard §3.2.5: with credentials `*` is never a wildcard; Bastion refuses
        # it rather than reflect any origin (which would hand every site the user's session)
        if v:
            for key in ("allow_origins", "allow_methods", "allow_headers", "expose_headers"):
                if "*" in info.data.get(key, ()):
                    raise ValueError(f"cannot be combined with {key}: ['*'] (list the values)")
        return v
