"""The `logging:` section: level, what an access record holds, redaction, and the log sinks.

Kept out of `config.py` (which re-exports `Logging`) so the sink models sit together. Each sink is
one model tagged by `type:`; several may run at once. The defaults are the ones a user of Fluent
Bit, Vector or Kong's log plugins would expect: a bounded queue per sink, reconnect with jittered
backoff, no disk spool unless a directory is given.

>>> Logging.model_validate({"sinks": [{"type": "tcp", "host": "127.0.0.1", "port": 5170}]}).sinks[0].kind
'tcp'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from proxy.units import Duration, Size

_HEADER = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2 token


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Spool(_Model):
    """A size-capped disk buffer that holds records while the collector is away and replays them
    in order when it returns (also across restarts: a spool left by a previous run is sent first)."""

    dir: Path
    max_size: Size = 256 * 1024 * 1024


class Delivery(_Model):
    queue: int = Field(10_000, ge=100)  # records held in memory per sink (~6 MB) before spooling or dropping
    batch: int = Field(1000, ge=1)  # records per write (tcp, syslog) or POST (http)
    backoff_min: Duration = Field(0.1, gt=0)
    backoff_max: Duration = Field(5.0, gt=0)
    spool: Spool | None = None
    # tcp/syslog have no acknowledgements: records stay in a resend window until a liveness check
    # this long after they were written finds the connection still open
    confirm_after: Duration = Field(1.0, ge=0)


class SinkTLS(_Model):
    ca_file: Path | None = None  # none: the system trust store
    verify: bool = True
    server_name: str | None = None  # SNI / certificate name, when it differs from `host`
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None  # unencrypted PEM: there is no passphrase setting

    @model_validator(mode="after")
    def _pair(self) -> SinkTLS:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")
        return self


class StdoutSink(_Model):
    type: Literal["stdout"]

    @property
    def kind(self) -> str:
        return "stdout"


class FileSink(_Model):
    """Rotated by size: `path`, `path.1` … `path.<backups>` (as logrotate and Python's
    RotatingFileHandler name them). With `--workers N` each worker writes `path` suffixed `.w<i>`."""

    type: Literal["file"]
    path: Path
    max_size: Size = 100 * 1024 * 1024
    backups: int = Field(5, ge=0, le=1000)
    delivery: Delivery = Delivery()

    @property
    def kind(self) -> str:
        return "file"


class TcpSink(_Model):
    """Newline-delimited JSON over TCP (Fluent Bit `tcp`, Vector `socket`, Logstash `json_lines`)."""

    type: Literal["tcp"]
    host: str
    port: int = Field(ge=1, le=65535)
    tls: SinkTLS | None = None
    connect_timeout: Duration = 2.0
    delivery: Delivery = Delivery()

    @property
    def kind(self) -> str:
        return "tcp"


class SyslogSink(_Model):
    """RFC 5424 messages over TCP with octet counting (RFC 6587 §3.4.1), or TLS (RFC 5425)."""

    type: Literal["syslog"]
    host: str
    port: int = Field(ge=1, le=65535)
    tls: SinkTLS | None = None
    connect_timeout: Duration = 2.0
    app_name: str = Field("bastion", pattern=r"^[!-~]{1,48}$")
    facility: int = Field(16, ge=0, le=23)  # local0
    delivery: Delivery = Delivery()

    @property
    def kind(self) -> str:
        return "syslog"


class HttpSink(_Model):
    """Batched NDJSON POSTs; a batch counts as delivered only on a 2xx answer."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://[^/\s]+(/\S*)?$")
    gzip: bool = False
    headers: dict[str, str] = {}  # e.g. an API key for the collector (use ${ENV} substitution)
    timeout: Duration = 5.0
    flush_interval: Duration = Field(1.0, gt=0)  # a partial batch is sent after this long
    tls: SinkTLS | None = None
    delivery: Delivery = Delivery()

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name}: control characters in the value")
        return v

    @property
    def kind(self) -> str:
        return "http"


def _sink_tag(v: Any) -> str | None:
    kind = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    # capitalised tags, so config.py's error mapper knows they are no key of the file
    return {"stdout": "Stdout", "file": "File", "tcp": "Tcp", "syslog": "Syslog", "http": "Http"}.get(str(kind))


Sink = Annotated[
    Annotated[StdoutSink, Tag("Stdout")]
    | Annotated[FileSink, Tag("File")]
    | Annotated[TcpSink, Tag("Tcp")]
    | Annotated[SyslogSink, Tag("Syslog")]
    | Annotated[HttpSink, Tag("Http")],
    Discriminator(
        _sink_tag,
        custom_error_type="invalid_sink",
        custom_error_message="each sink needs `type:` stdout, file, tcp, syslog or http",
    ),
]


class Redaction(_Model):
    """Added to the built-in lists (proxy/redact.py), never replacing them: a config cannot turn
    redaction of `Authorization` off by accident."""

    headers: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # query parameter and JSON key names (case-insensitive substrings)


class Logging(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json"] = "json"
    access_log: bool = True
    # request headers copied into the access record as `http.request.header.<name>` (redacted)
    headers: tuple[str, ...] = ()
    query: bool = True  # the query string as `url.query`, sensitive parameters redacted
    max_field: int = Field(2048, ge=64)  # longer user-controlled strings are cut
    redact: Redaction = Redaction()
    flush_timeout: Duration = Field(5.0, ge=0)  # at shutdown, how long the sinks may take to deliver
    sinks: tuple[Sink, ...] = (StdoutSink(type="stdout"),)

    @field_validator("headers")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not _HEADER.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
        return tuple(n.lower() for n in v)
