"""The rule file as written in YAML: pydantic models, frozen, unknown keys refused.

These models only check the *shape* of a file (types, required keys, one spelling per idea). What a
rule means across files (role graph, precedence ties, patterns that cannot match a canonical path)
is the compiler's and the linter's job, because it needs every file at once.

Unions are tagged with callable discriminators whose tags start with an upper-case letter: pydantic
then reports only the errors of the branch the author meant (`allow.roles_any: Input should be a
valid tuple`, not one message per branch), and `config.pydantic_messages` drops the tag from the
key path. Later per-rule keys (`rate_limit`, `login`, `headers`, `body`, `query`, `cors`) are added to
`RuleSpec` as optional fields defaulting to None, so existing files stay valid and a typo stays an
error.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from proxy.config import CIDR, LimitSpec, unique_limit_names
from proxy.config_hardening import Cors, HeaderOverrides
from proxy.units import Duration, Size

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
_ROLE = r"^[^\s]{1,200}$"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 §5.6.2 token: method and header names
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")

RoleName = Annotated[str, Field(pattern=_ROLE)]
Scalar = str | int | float | bool


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegexPath(Spec):
    """`{regex: "^/v[0-9]+/items$"}`: matched with `re.fullmatch` against the canonical path."""

    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return v


def _path_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return "Glob"
    if isinstance(v, list | tuple):
        return "List"
    return "Regex" if isinstance(v, dict) else None


PathSpec = Annotated[
    Annotated[str, Tag("Glob")] | Annotated[tuple[str, ...], Tag("List")] | Annotated[RegexPath, Tag("Regex")],
    Discriminator(
        _path_kind,
        custom_error_type="path_type",
        custom_error_message="must be a pattern, a list of patterns or {regex: ...}",
    ),
]


class MatchSpec(Spec):
    path: PathSpec
    methods: tuple[str, ...] | None = None
    host: str | None = None
    headers_present: tuple[str, ...] = ()
    client_cidrs: tuple[CIDR, ...] = ()

    @field_validator("path")
    @classmethod
    def _non_empty(cls, v: str | tuple[str, ...] | RegexPath) -> str | tuple[str, ...] | RegexPath:
        if isinstance(v, tuple) and not v:
            raise ValueError("at least one pattern is required")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("at least one method is required (leave the key out to match any method)")
        for m in v:
            if not _TOKEN.match(m):
                raise ValueError(f"invalid method {m!r}")
        # methods are case-sensitive on the wire (RFC 9110 §9.1); rules name them in upper case
        return tuple(dict.fromkeys(m.upper() for m in v))

    @field_validator("headers_present")
    @classmethod
    def _headers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for h in v:
            if not _TOKEN.match(h):
                raise ValueError(f"invalid header name {h!r}")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host = v.lower().rstrip(".")
        if not _HOST.match(host):
            raise ValueError(f"invalid host {v!r} (an exact name or *.example.com, without port)")
        return host


class ClaimSpec(Spec):
    """One claim test; every key given must hold. A list-valued claim passes if any element does."""

    equals: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(None, alias="in")
    equals_header: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ClaimSpec:
        if self.equals is None and self.in_ is None and self.equals_header is None:
            raise ValueError("give at least one of equals, in, equals_header")
        if self.equals_header is not None and not _TOKEN.match(self.equals_header):
            raise ValueError(f"invalid header name {self.equals_header!r}")
        return self


class AllowSpec(Spec):
    """A mapping form of `allow`: an authenticated principal for whom every given key holds."""

    roles_any: tuple[RoleName, ...] | None = None
    roles_all: tuple[RoleName, ...] | None = None
    scopes_any: tuple[str, ...] | None = None
    scopes_all: tuple[str, ...] | None = None
    claims: dict[str, ClaimSpec] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> AllowSpec:
        if not any(v for v in (self.roles_any, self.roles_all, self.scopes_any, self.scopes_all, self.claims)):
            raise ValueError("an empty allow mapping; write `allow: authenticated` to admit any verified principal")
        return self


def _allow_kind(v: Any) -> str | None:
    return "Name" if isinstance(v, str) else "Mapping" if isinstance(v, dict) else None


AllowField = Annotated[
    Annotated[Literal["anonymous", "authenticated"], Tag("Name")] | Annotated[AllowSpec, Tag("Mapping")],
    Discriminator(
        _allow_kind,
        custom_error_type="allow_type",
        custom_error_message="must be anonymous, authenticated or a mapping of conditions",
    ),
]


class JsonLimitsSpec(Spec):
    max_depth: int = Field(32, ge=1, le=512)
    max_keys: int = Field(1000, ge=1)
    max_array: int = Field(10_000, ge=1)
    max_string: Size = 1024 * 1024


class BodySpec(Spec):
    """What a route accepts as a body (see rules/README.md "Bodies")."""

    content_types: tuple[str, ...] | None = None  # media types; anything else is a 415
    required: bool = False
    max_size: Size | None = None  # overrides limits.max_body for this route
    schema_: dict[str, Any] | str | None = Field(None, alias="schema")  # JSON Schema draft-07, inline or a file
    json_limits: JsonLimitsSpec = JsonLimitsSpec()
    max_fields: int = Field(1000, ge=1)  # form fields / multipart parts
    max_part: Size = 10 * 1024 * 1024

    @field_validator("content_types")
    @classmethod
    def _media(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            for mt in v:
                if not re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+*-]+", mt):
                    raise ValueError(f"invalid media type {mt!r} (lower-case type/subtype, no parameters)")
        return v


class QuerySpec(Spec):
    schema_: dict[str, Any] | str | None = Field(None, alias="schema")
    max_params: int = Field(100, ge=1)


def _login(v: Any) -> Any:
    # `login: true` takes the default field; `login: false` is the same as leaving the key out
    return {} if v is True else None if v is False else v


class LoginSpec(Spec):
    """`login: true` or `login: {username_field: email}`: brute-force protection (config `rate_limits.login`)."""

    username_field: str = Field("username", pattern=r"^[^\s]{1,64}$")


class UpstreamSpec(Spec):
    """Per-route upstream timeouts; each overrides the global `upstream.*` one (a slow report
    endpoint may wait longer than the rest of the API, a health check less)."""

    read_timeout: Duration | None = None
    total_timeout: Duration | None = None


class RuleSpec(Spec):
    id: str = Field(pattern=_ID)
    match: MatchSpec
    allow: AllowField
    mode: Literal["enforce", "shadow"] = "enforce"
    description: str | None = None
    body: BodySpec | None = None
    query: QuerySpec | None = None
    detect: dict[str, Any] | None = None  # attack detection (proxy/detect/spec.py); validated at compile
    upstream: UpstreamSpec | None = None  # this route's upstream timeouts
    headers: HeaderOverrides | None = None  # response headers: set / if_absent / append / remove
    cors: Cors | None = None  # replaces the global `cors:` for this rule
    # rate limits of this rule, added to the global `rate_limits.default`; shown as `<rule id>.<name>`
    rate_limit: Annotated[tuple[LimitSpec, ...], AfterValidator(unique_limit_names)] | None = None
    login: Annotated[LoginSpec | None, BeforeValidator(_login)] = None  # count failed logins, lock out


class TestRequest(Spec):
    method: str
    path: str
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    claims: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    host: str = "localhost"
    client_ip: str = "127.0.0.1"
    # None: anonymous exactly when no roles, scopes or claims are given
    anonymous: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TestRequest:
        if self.anonymous and (self.roles or self.scopes or self.claims):
            raise ValueError("an anonymous request has no roles, scopes or claims")
        return self

    @property
    def is_anonymous(self) -> bool:
        if self.anonymous is not None:
            return self.anonymous
        return not (self.roles or self.scopes or self.claims)


class TestSpec(Spec):
    __test__ = False  # not a pytest class

    request: TestRequest
    expect: Literal["allow", "deny"]
    rule: str | None = None
    status: int | None = Field(None, ge=100, le=599)
    name: str | None = None


class RuleFile(Spec):
    roles: dict[RoleName, tuple[RoleName, ...]] = Field(default_factory=dict)
    rules: tuple[RuleSpec, ...] = ()
    tests: tuple[TestSpec, ...] = ()
