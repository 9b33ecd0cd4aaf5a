"""Bastion's configuration, declared once as pydantic models.

Every model is frozen and forbids unknown keys, so a typo is an error at start-up rather than a
silently ignored setting. `load_config()` maps each pydantic error back to `file:line: key.path`
through `yamlsource`. Later sections (`auth`, `rules`, `store`, `rate_limits`, `headers`, `cors`,
log `sinks`) are added here as their own models.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from proxy import yamlsource
from proxy.units import Duration, Size

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    """The admin listener: health, readiness (later metrics). Loopback by default."""

    host: str = "127.0.0.1"
    port: int = Field(9901, ge=0, le=65535)


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


class Logging(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json"] = "json"
    access_log: bool = True


class Shutdown(Model):
    drain_delay: Duration = 5.0
    grace_period: Duration = 30.0


class WebSocket(Model):
    enabled: bool = True
    max_message: Size = 1024 * 1024


class RequestId(Model):
    header: str = "X-Request-ID"


class Config(Model):
    listen: Listen = Listen()
    admin: Admin = Admin()
    upstream: Upstream = Upstream()
    trusted_proxies: tuple[CIDR, ...] = ()
    client_ip_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    limits: Limits = Limits()
    logging: Logging = Logging()
    shutdown: Shutdown = Shutdown()
    websocket: WebSocket = WebSocket()
    request_id: RequestId = RequestId()

    def cross_checks(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Rules that span sections, each with the key path to blame (pydantic would say "top level")."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
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
