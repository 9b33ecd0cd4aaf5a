"""Bastion's configuration, declared once as pydantic models.

Every model is frozen and forbids unknown keys, so a typo is an error at start-up rather than a
silently ignored setting. `load_config()` maps each pydantic error back to `file:line: key.path`
through `yamlsource`. Later sections (`auth`, `rules`, `store`, `rate_limits`, `headers`, `cors`,
log `sinks`) are added here as their own models.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from proxy import yamlsource
from proxy.config_hardening import Cors, Headers
from proxy.config_logging import Logging
from proxy.forwarded import SPOOFABLE
from proxy.headers import HOP_BY_HOP
from proxy.units import Duration, Size, parse_duration

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# Fields Bastion sets on the upstream request (the forwarded family, trace context: tracecontext.py
# imports this module, so its two names are spelled here), hop-by-hop and framing fields, and the
# client's credentials: never a claim header. The request-id header is checked across sections
# (Config.cross_checks).
_BASTION_FIELDS = (
    frozenset(h.lower() for h in SPOOFABLE)
    | HOP_BY_HOP
    | {"host", "traceparent", "tracestate", "content-length", "expect", "cookie", "authorization"}
)


def _cidr(value: Any) -> IPNetwork:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError(f"invalid CIDR {value!r}") from None


CIDR = Annotated[IPNetwork, BeforeValidator(_cidr)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSFiles(Model):
    cert_file: Path
    key_file: Path


class Listen(Model):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    tls: TLSFiles | None = None
    backlog: int = Field(1024, ge=1)


class Admin(Model):
    """The admin listener: health, readiness, revocations. Loopback by default."""

    host: str = "127.0.0.1"
    port: int = Field(9901, ge=0, le=65535)
    token: SecretStr | None = None  # bearer token for POST /revocations; none → the endpoint is off
    token_file: Path | None = None

    def token_value(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value() or None
        if self.token_file is not None:
            return read_secret_file(self.token_file) or None
        return None


class Upstream(Model):
    url: str = "http://127.0.0.1:8000"
    connect_timeout: Duration = 2.0
    read_timeout: Duration = 30.0
    total_timeout: Duration | None = None
    pool_size: int = Field(100, ge=1)
    keepalive_timeout: Duration = 60.0
    host_header: Literal["preserve", "rewrite"] = "preserve"
    ca_file: Path | None = None
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v.startswith("unix:"):
            path = v.removeprefix("unix:").removeprefix("//")
            if not path.startswith("/"):
                raise ValueError(f"invalid upstream {v!r}: a unix socket path must be absolute")
            return "unix:" + path
        scheme, sep, rest = v.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or rest.strip("/") == "":
            raise ValueError(f"invalid upstream {v!r} (use http://host:port, https://host:port or unix:/path)")
        host = rest.split("/", 1)[0]
        if "/" in rest.rstrip("/"):
            raise ValueError(f"invalid upstream {v!r}: a path prefix is not supported")
        if "@" in host or "?" in rest or "#" in rest:
            raise ValueError(f"invalid upstream {v!r}: no credentials, query or fragment")
        return f"{scheme}://{host}"

    @property
    def unix_path(self) -> str | None:
        return self.url.removeprefix("unix:") if self.url.startswith("unix:") else None


class Limits(Model):
    max_body: Size = 1024 * 1024
    max_uri: Size = 8 * 1024
    max_headers: int = Field(100, ge=1)
    max_header_bytes: Size = 16 * 1024
    # slow clients (slowloris, R.U.D.Y.): aiohttp has neither timeout by default
    header_timeout: Duration = Field(10.0, gt=0)  # from a request's first byte to its complete head: 408
    body_idle_timeout: Duration = Field(30.0, gt=0)  # longest pause while a request body arrives: 408


# RFC 9110 §9 methods and PATCH (RFC 5789). TRACE and CONNECT are left out on purpose (XST, tunnels).
DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Paths(Model):
    """Canonical-path options (README "The canonical path")."""

    encoded_slash: Literal["reject", "keep"] = "reject"
    merge_slashes: bool = True


class Protocol(Model):
    """HTTP hygiene beyond the parser (see README "Framing")."""

    methods: tuple[str, ...] = DEFAULT_METHODS  # others: 405 if registered, 501 if unknown
    allow_python_parser: bool = False  # the pure-Python parser has had smuggling bugs: opt in only

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for m in v:
            if not re.fullmatch(r"[A-Z][A-Z-]{0,31}", m):
                raise ValueError(f"invalid method {m!r} (upper-case token)")
        if "CONNECT" in v:
            raise ValueError("CONNECT is never proxied: Bastion is not a tunnel")
        return v


class Shutdown(Model):
    drain_delay: Duration = 5.0
    grace_period: Duration = 30.0


class WebSocket(Model):
    enabled: bool = True
    max_message: Size = 1024 * 1024


class RequestId(Model):
    header: str = "X-Request-ID"


class Tracing(Model):
    """W3C trace context (proxy/tracecontext.py). `accept_incoming: false` starts a new trace for every
    request (a front gate for untrusted clients); by default a valid client `traceparent` is
    continued, as Envoy does."""

    enabled: bool = True
    accept_incoming: bool = True


HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
Algorithm = Literal[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


def read_secret_file(path: Path) -> str:
    """A `*_file` secret: the file's content without the trailing newline editors add."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


class TokenSource(Model):
    """Where a token may come from: exactly one of `header` (with an optional `scheme`) or `cookie`."""

    header: str | None = None
    scheme: str | None = None
    cookie: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TokenSource:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("give exactly one of header or cookie")
        if self.scheme is not None and self.header is None:
            raise ValueError("scheme only applies to a header source")
        return self


class JwksCache(Model):
    min_ttl: Duration = 300.0
    max_ttl: Duration = 86400.0
    refetch_unknown_kid_after: Duration = 30.0
    fetch_timeout: Duration = 5.0


class Issuer(Model):
    """One trusted token issuer. The key type is fixed here, never chosen by a token's `alg`."""

    issuer: str = Field(min_length=1)
    audiences: tuple[str, ...] = ()
    algorithms: tuple[Algorithm, ...] = Field(min_length=1)
    jwks_url: str | None = None
    jwks_cache: JwksCache = JwksCache()
    secret: SecretStr | None = None
    secret_file: Path | None = None
    public_key_file: Path | None = None
    required_claims: tuple[str, ...] = ("exp",)
    leeway: Duration = 30.0
    typ: str | None = None

    @model_validator(mode="after")
    def _keys(self) -> Issuer:
        hmac = set(self.algorithms) & HMAC_ALGS
        asym = set(self.algorithms) & ASYMMETRIC_ALGS
        if hmac and asym:  # SECURITY: RFC 8725 §3.1/§2.1 key confusion: one issuer, one key type
            raise ValueError("algorithms mixes HMAC and public-key algorithms; use two issuers")
        sources = [n for n in ("jwks_url", "secret", "secret_file", "public_key_file") if getattr(self, n) is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of jwks_url, secret, secret_file, public_key_file")
        if hmac and sources[0] not in ("secret", "secret_file"):
            raise ValueError("HMAC algorithms need secret or secret_file")
        if asym and sources[0] not in ("jwks_url", "public_key_file"):
            raise ValueError("public-key algorithms need jwks_url or public_key_file")
        if self.jwks_url is not None and not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http(s) URL")
        if "exp" not in self.required_claims:
            raise ValueError("required_claims must include exp: a token without expiry is never accepted")
        if hmac and len(self.secret_bytes()) < 32:  # RFC 7518 §3.2: at least the hash size
            raise ValueError("an HMAC secret must be at least 32 bytes")
        return self

    def secret_bytes(self) -> bytes:
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        if self.secret_file is not None:
            return read_secret_file(self.secret_file).encode()
        return b""


class Revocation(Model):
    enabled: bool = True
    subject_ttl: Duration = 86400.0  # how long a "tokens of sub before T" cut-off is kept: ≥ your token lifetime


class TokenCache(Model):
    size: int = Field(10_000, ge=0)
    ttl: Duration = 300.0


class Auth(Model):
    token_sources: tuple[TokenSource, ...] = (TokenSource(header="Authorization", scheme="Bearer"),)
    max_token_bytes: Size = 8 * 1024
    issuers: tuple[Issuer, ...] = ()
    roles_claim: str = "roles"
    forward_claims: dict[str, str] = Field(default_factory=lambda: {"sub": "X-User-Id", "roles": "X-User-Roles"})
    revocation: Revocation = Revocation()
    cache: TokenCache = TokenCache()
    cookie_origins: tuple[str, ...] = ()

    @field_validator("forward_claims")
    @classmethod
    def _header_names(cls, v: dict[str, str]) -> dict[str, str]:
        for header in v.values():
            if not _HEADER_NAME.fullmatch(header):
                raise ValueError(f"invalid header name {header!r}")
            # SECURITY: Bastion appends its own value of these; a claim under the same name would be a
            # second copy, and upstreams that read the first and the last would disagree
            if header.lower().replace("_", "-") in _BASTION_FIELDS:
                raise ValueError(f"{header!r} is a field Bastion sets itself")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Auth:
        names = [i.issuer for i in self.issuers]
        if len(set(names)) != len(names):
            raise ValueError("each issuer may appear once")
        return self


_RATE_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0}
_RATE_UNITS |= {"hour": 3600.0, "d": 86400.0, "day": 86400.0}
_LIMIT_KEY = re.compile(r"^(ip|sub|route|header:[A-Za-z0-9][A-Za-z0-9-]{0,63})$")
_LIMIT_NAME = r"^[A-Za-z0-9_-]{1,64}$"


def parse_rate(value: Any) -> tuple[int, float]:
    """`100/s`, `5/minute`, `20/10s`, `1000/hours` → (count, period in seconds)."""
    count, sep, per = str(value).strip().partition("/")
    per = per.strip().lower()
    unit = per if per in _RATE_UNITS else per[:-1] if per.endswith("s") and per[:-1] in _RATE_UNITS else None
    try:
        period = _RATE_UNITS[unit] if unit else parse_duration(per)
        n = int(count.strip())
    except (ValueError, KeyError):
        raise ValueError(f"invalid rate {value!r} (use e.g. 100/s, 5/minute, 20/10s)") from None
    if not sep or n < 1 or not 0.001 <= period <= 86400:
        raise ValueError(f"invalid rate {value!r}: a count of at least 1 per 1ms..1d")
    return n, period


def _limit_keys(value: Any) -> Any:
    keys = [value] if isinstance(value, str) else value
    if isinstance(keys, list | tuple):
        for k in keys:
            if not isinstance(k, str) or not _LIMIT_KEY.match(k):
                raise ValueError(f"invalid key {k!r} (use ip, sub, route, header:<Name>, or a list of them)")
        keys = [k.lower() for k in keys]
        if not keys or len(set(keys)) != len(keys):
            raise ValueError("key needs at least one part, each at most once")
    return keys


class LimitSpec(Model):
    """One rate limit (GCRA): `{key: ip, rate: 100/s, burst: 200}`; a list key is a composite key.

    `burst` (default: the rate's count) is how many requests may arrive at once; `name` is the
    policy name clients see in `RateLimit-Policy` (default: the key parts joined by `-`)."""

    key: Annotated[tuple[str, ...], BeforeValidator(_limit_keys)]
    rate: Annotated[tuple[int, float], BeforeValidator(parse_rate)]
    burst: int | None = Field(None, ge=1)
    name: str | None = Field(None, pattern=_LIMIT_NAME)

    @model_validator(mode="after")
    def _exact(self) -> LimitSpec:
        # the GCRA works in integer µs scaled by the count; it must stay exact in a Lua double
        if (self.burst or self.rate[0]) * round(self.rate[1] * 1e6) > 2**52:
            raise ValueError("burst × period is too large (at most 2^52 µs; e.g. burst 50000 per day)")
        return self

    @property
    def policy_name(self) -> str:
        return self.name or "-".join(k.removeprefix("header:") for k in self.key)


def unique_limit_names(specs: tuple[LimitSpec, ...]) -> tuple[LimitSpec, ...]:
    names = [s.policy_name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique (got {names}); give each limit a `name`")
    return specs


class LoginLimits(Model):
    """Brute-force protection on rules marked `login`: failures counted per ip and per username."""

    max_failures: int = Field(5, ge=1)  # per submitted username
    ip_max_failures: int = Field(20, ge=1)  # per client address
    window: Duration = 900.0  # failures are forgotten this long after the last attempt
    lockout: Duration = 60.0  # the first lockout; each further one doubles
    max_lockout: Duration = 3600.0
    failure_status: tuple[int, ...] = (401,)  # answers (Bastion's or the upstream's) that count as a failure
    max_body: Size = 16 * 1024  # a login body is read (bounded) to find the username


class RateLimits(Model):
    default: Annotated[tuple[LimitSpec, ...], AfterValidator(unique_limit_names)] = ()
    headers: Literal["on_limit", "always"] = "on_limit"  # RateLimit fields on 429 only, or on every answer
    ipv6_prefix: int = Field(64, ge=32, le=128)  # `ip` keys an IPv6 client by its /64: one host owns a whole /64
    login: LoginLimits = LoginLimits()


class RedisStore(Model):
    url: str = "redis://127.0.0.1:6379/0"  # redis://, rediss:// or unix://; ${VAR} for a password
    timeout: Duration = 0.05  # per call: connect, send and answer; past it on_failure applies
    key_prefix: str = Field("bastion:", pattern=r"^[A-Za-z0-9_.:-]{0,64}$")
    pool_size: int = Field(8, ge=1, le=256)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"invalid redis url {v!r} (use redis://host:port/db, rediss:// or unix:///path)")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not 0 < v <= 10:
            raise ValueError("timeout must be above 0 and at most 10s")
        return v


class Breaker(Model):
    failures: int = Field(3, ge=1)  # consecutive failed calls that open the circuit
    retry_every: Duration = 1.0  # while open, one background probe this often; requests never wait


class Store(Model):
    """Shared state: rate-limit buckets, login lockouts and the revocation deny-list."""

    backend: Literal["memory", "redis"] = "memory"
    redis: RedisStore = RedisStore()
    on_failure: Literal["fail_open", "fail_closed"] = "fail_open"
    breaker: Breaker = Breaker()


class Config(Model):
    listen: Listen = Listen()
    admin: Admin = Admin()
    upstream: Upstream = Upstream()
    trusted_proxies: tuple[CIDR, ...] = ()
    client_ip_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    limits: Limits = Limits()
    protocol: Protocol = Protocol()
    paths: Paths = Paths()
    # attack detection for every rule without its own `detect:` (same keys: proxy/detect/spec.py);
    # validated when the rules load. None: off unless a rule asks.
    detect: dict[str, Any] | None = None
    logging: Logging = Logging()
    shutdown: Shutdown = Shutdown()
    websocket: WebSocket = WebSocket()
    request_id: RequestId = RequestId()
    tracing: Tracing = Tracing()
    auth: Auth = Auth()
    # Rule-file globs, relative to the config file's directory. An explicit empty list turns the
    # access rules off (every request that passes the other checks is forwarded): `check` warns.
    rules: tuple[str, ...] = ("rules/*.yaml",)
    rules_mode: Literal["enforce", "shadow"] = "enforce"
    rules_watch: bool = True  # reload when a rule file changes (SIGHUP always reloads)
    store: Store = Store()
    rate_limits: RateLimits = RateLimits()
    # Response hardening (proxy/config_hardening.py): security headers, CORS owned by Bastion when
    # given, and upstream 5xx bodies replaced by a generic problem document (the status is kept).
    headers: Headers = Headers()
    cors: Cors | None = None
    mask_upstream_errors: bool = False

    @field_validator("detect")
    @classmethod
    def _detect(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            from proxy.detect import DetectConfigError, parse_detect  # the engine is built again at start

            try:
                parse_detect(v)
            except DetectConfigError as exc:
                raise ValueError("; ".join(exc.errors)) from None
        return v

    def cross_checks(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Rules that span sections, each with the key path to blame (pydantic would say "top level")."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        rid = self.request_id.header.lower()
        for claim, header in self.auth.forward_claims.items():
            if header.lower() == rid:
                problems.append(
                    (("auth", "forward_claims", claim), f"{header!r} is the request-id header Bastion sets itself")
                )
        if self.listen.port and self.listen.port == self.admin.port:
            problems.append(
                (("admin", "port"), "must differ from listen.port: the admin API is never on the proxied port")
            )
        return problems


class ConfigError(Exception):
    """Every problem found in a config file, each line naming file, line and key path."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def load_config(path: str | Path) -> Config:
    try:
        doc = yamlsource.load(path)
    except yamlsource.SourceError as exc:
        raise ConfigError(exc.messages) from None
    return validate(doc)


def validate(doc: yamlsource.Document) -> Config:
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.error((), "the top level must be a mapping")])
    try:
        cfg = Config.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(pydantic_messages(doc, exc)) from None
    problems = cfg.cross_checks()
    if problems:
        raise ConfigError([doc.error(loc, msg) for loc, msg in problems])
    return cfg


def pydantic_messages(doc: yamlsource.Document, exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[str]:
    """Turn pydantic's errors into `file:line: key.path: message`, in file order."""
    out: list[tuple[int, str]] = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(p for p in err["loc"] if not _is_union_tag(p))
        msg = _message(err)
        out.append((doc.line_of(loc), doc.error(loc, msg)))
    out.sort(key=lambda t: t[0])
    return [m for _, m in out]


def _is_union_tag(part: Any) -> bool:
    # pydantic adds the union member's type name to `loc` (e.g. "IPv4Network"); it is no key of the file
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part.startswith("function-"))


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if kind in ("int_parsing", "int_type", "bool_parsing", "bool_type", "literal_error", "string_type"):
        msg += f" (got {err.get('input')!r})"
    return msg
