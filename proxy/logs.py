"""One schema for every log record, and the hub that redacts, serialises and ships them.

The process's logs go through `logging` with python-json-logger's orjson formatter. The access
record does not: `logging` + python-json-logger cost ~13 µs a line here against ~0.3 µs for
`orjson.dumps`, and this runs on every request. Both paths produce the same dict shape (ECS field
names, README "Logs") and meet in one `LogOutput`. The request path only appends the dict to a
bounded deque; a writer thread does everything else, off the event loop: gives each record its
`event.id`, derives the security events from access records (logship/events.py), redacts and caps
user-controlled strings (redact.py), serialises once to an NDJSON line, feeds the metrics, and
hands the lines to every sink (logship/), each with its own queue and thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import IO, Any

import orjson
from pythonjsonlogger.orjson import OrjsonFormatter

from proxy.config_logging import Logging
from proxy.logship import QueuedSink, SinkStats, build_sinks, stdout_sink
from proxy.logship.events import security_events
from proxy.logship.transports import StreamTransport
from proxy.redact import Redactor

_MAX_FIELD = 2048
# the writer thread shares the GIL with the event loop: it lets go this often (records), so a busy
# drain never makes a request wait for Python's 5 ms switch interval
_YIELD_EVERY = 128
# set on an access record that feeds the metrics and security events but gets no line of its own
# (`logging.access_log: false`)
UNLOGGED = "bastion.unlogged"
# (request id, trace id) of the request this task is serving: set by server.py, read by
# OutputHandler, so a process log line written during a request can be joined to its access record
REQUEST_SCOPE: ContextVar[tuple[str, str | None] | None] = ContextVar("bastion_request", default=None)
_DROP_WARNING_EVERY = 10.0
# Bastion's own fields: values it generated or validated, never user text, so never scanned
_TRUSTED = frozenset(
    {
        "@timestamp", "log.level", "log.logger", "event.dataset", "event.id", "event.kind", "event.category",
        "event.action", "event.outcome", "http.request.id", "trace.id", "span.id", "client.ip",
        "http.request.method", "http.response.status_code", "http.request.body.bytes",
        "http.response.body.bytes", "bastion.duration_ms", "bastion.upstream_ms", "bastion.rule",
        "bastion.decision", "bastion.reason", "bastion.upstream_status", "bastion.login", "bastion.cors",
        "bastion.auth_ignored", "process.pid",
    }
)  # fmt: skip


_second: tuple[int, str] = (0, "")


_PLAIN_TEXT = frozenset({"url.path", "user_agent.original", "bastion.detail", "user.id", "message"})


def _iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds. The formatted second is reused: `datetime.isoformat` costs
    ~2 µs, and this runs on every record."""
    global _second
    sec = int(ts)
    cached_sec, prefix = _second
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _second = (sec, prefix)
    return f"{prefix}.{int((ts - sec) * 1000):03d}Z"


class LogOutput:
    """Records are appended to a deque (atomic, no lock, no wake-up) and a writer thread drains it
    every `interval` seconds: waking a thread per record would cost a futex round trip and a GIL
    hand-off on every request. The deque is bounded: past `max_pending` a record is dropped and
    counted rather than let memory grow while the writer is starved."""

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        *,
        sinks: list[QueuedSink] | None = None,
        redactor: Redactor | None = None,
        interval: float = 0.05,
        max_pending: int = 200_000,
        flush_timeout: float = 5.0,
    ) -> None:
        if sinks is None:
            sinks = [stdout_sink(stream)]
        self.sinks = sinks
        self.redactor = redactor or Redactor()
        # the metrics, fed each drain's records at once, on the writer thread
        self.observer: Callable[[list[dict[str, Any]]], None] | None = None
        self.sink_observer: Callable[[str, SinkStats], None] | None = None
        self.flush_timeout = flush_timeout
        self.overflow = 0  # records dropped before any sink saw them
        self.malformed = 0  # records written in a degraded form (see `_line`)
        self._max_pending = max_pending
        self._pending: deque[dict[str, Any]] = deque()
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(8).hex() + "-"
        self._interval = interval
        self._stop = threading.Event()
        self._closed = False
        self._last_warning = time.monotonic()
        self._warned_drops = 0
        self._stdout_configured = any(isinstance(s.transport, StreamTransport) for s in sinks)
        self._thread = threading.Thread(target=self._run, name="bastion-log", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, cfg: Logging, worker: str | None = None) -> LogOutput:
        redactor = Redactor(cfg.redact.headers, cfg.redact.keys, cfg.max_field)
        return cls(sinks=build_sinks(cfg, worker), redactor=redactor, flush_timeout=cfg.flush_timeout)

    def emit(self, record: dict[str, Any]) -> None:
        if len(self._pending) >= self._max_pending or self._closed:  # after close: nobody would write it
            self.overflow += 1
            return
        self._pending.append(record)

    def dropped(self) -> int:
        return self.overflow + sum(s.stats().dropped for s in self.sinks)

    def close(self, timeout: float | None = None) -> None:
        """Flush everything emitted so far to every sink, within the flush timeout."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + (self.flush_timeout if timeout is None else timeout)
        self._stop.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._drain()  # anything emitted while the thread was finishing
        for sink in self.sinks:
            sink.close(deadline)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._drain()
                self._report()
            except Exception as exc:  # pragma: no cover - the writer must survive anything
                sys.stderr.write(f"bastion: log writer error: {exc!r}\n")
        self._drain()

    def _drain(self) -> None:
        pending = self._pending
        if not pending:
            return
        lines: list[bytes] = []
        observed: list[dict[str, Any]] = []
        n = 0
        try:
            while pending:
                record = pending.popleft()
                n += 1
                try:
                    derived = security_events(record) if record.get("event.dataset") == "bastion.access" else ()
                except Exception:  # pragma: no cover - a malformed record still gets its own line
                    derived = ()
                if not record.pop(UNLOGGED, False):
                    lines.append(self._line(record))
                observed.append(record)
                for event in derived:  # most records have none: no tuple built for them
                    lines.append(self._line(event))
                    observed.append(event)
                if n % _YIELD_EVERY == 0:
                    time.sleep(0)  # let the event loop have the GIL: it must not wait a switch interval
        finally:  # whatever was prepared reaches the sinks and the metrics, even if something went wrong
            for sink in self.sinks:
                sink.offer(lines)
            if self.observer is not None and observed:
                try:
                    self.observer(observed)
                except Exception:  # pragma: no cover - metrics must never stop the logs
                    pass

    def _line(self, record: dict[str, Any]) -> bytes:
        """One record, one line, whatever it holds: a record that cannot be redacted or serialised
        as is (non-string keys, huge integers, odd types) is written in a degraded form and counted,
        never dropped with the batch around it."""
        try:
            return serialise(self.prepare(record))
        except Exception as exc:
            self.malformed += 1
            stub = {
                "@timestamp": time.time(),
                "log.level": "error",
                "event.dataset": str(record.get("event.dataset", "bastion.process")),
                "event.id": record.get("event.id") or self._id_prefix + str(next(self._ids)),
                "message": "log record could not be serialised as is",
                "error.message": f"{type(exc).__name__}: {exc}"[:200],
                "bastion.record": self.redactor.text(repr(record)),
            }
            return serialise(stub)

    def prepare(self, record: dict[str, Any]) -> dict[str, Any]:
        """Give the record its id and redact everything a client could have put in it (in place:
        the record belongs to the log pipeline once emitted)."""
        r = self.redactor
        # the set difference runs in C: most of an access record's ~20 fields are Bastion's own
        for key in record.keys() - _TRUSTED:
            value = record[key]
            if value is None or type(value) in (int, float, bool):
                continue
            if key in _PLAIN_TEXT:  # the access record's own user-controlled strings: no name to check
                record[key] = r.text(value) if type(value) is str else r.tree(value, key)
            elif key == "url.query":
                record[key] = r.query(value)
            elif key.startswith("http.request.header."):
                record[key] = r.header(key[20:], value)
            elif key == "bastion.detections":
                record[key] = [r.detection(d) for d in value]
            elif key == "bastion.attack":
                record[key] = r.detection(value)
            else:
                record[key] = r.tree(value, key.rpartition(".")[2])
        record["event.id"] = self._id_prefix + str(next(self._ids))
        return record

    def _report(self) -> None:
        """Sink gauges for the metrics, and a periodic warning while records are being dropped."""
        stats = [(s.name, s.stats()) for s in self.sinks]
        if self.sink_observer is not None:
            before = SinkStats(len(self._pending), 0, 0, 0, self.overflow, True, 0)
            for name, st in [*stats, ("before_sinks", before)]:
                try:
                    self.sink_observer(name, st)
                except Exception:  # pragma: no cover
                    pass
        now = time.monotonic()
        if now - self._last_warning < _DROP_WARNING_EVERY:
            return
        self._last_warning = now
        dropped = self.overflow + sum(st.dropped for _, st in stats)
        if dropped > self._warned_drops:
            warning = {
                "@timestamp": time.time(),
                "log.level": "warning",
                "log.logger": "bastion.logs",
                "message": "log records dropped: a sink's queue (and spool) is full",
                "event.dataset": "bastion.process",
                "event.action": "log_records_dropped",
                "bastion.dropped": {name: st.dropped for name, st in stats} | {"before_sinks": self.overflow},
                "bastion.dropped_since_last": dropped - self._warned_drops,
            }
            self._warned_drops = dropped
            self.emit(warning)
            if not self._stdout_configured:
                sys.stdout.buffer.write(serialise(self.prepare(warning)))
                sys.stdout.buffer.flush()


def serialise(record: dict[str, Any]) -> bytes:
    """One NDJSON line; `@timestamp` always comes first (the syslog transport reads it from there).
    The record is the pipeline's own by now, so it is changed in place rather than copied."""
    ts = record.get("@timestamp")
    stamp = _iso(ts) if isinstance(ts, float) else ts
    if next(iter(record)) == "@timestamp":
        record["@timestamp"] = stamp
    else:
        record = {"@timestamp": stamp, **{k: v for k, v in record.items() if k != "@timestamp"}}
    return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)


def cap(value: str | None, limit: int = _MAX_FIELD) -> str | None:
    """User-controlled strings are length-capped (orjson escapes control characters)."""
    if value is None or len(value) <= limit:
        return value
    return value[:limit] + "…"


class _DictFormatter(OrjsonFormatter):
    """python-json-logger's field handling, stopping before serialisation: `LogOutput` owns that."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["log.level"] = str(log_data.get("log.level", "")).lower()
        # a process record that names an action (reload, JWKS failure, breaker) is a security event
        log_data["event.dataset"] = "bastion.security" if "event.action" in log_data else "bastion.process"
        return log_data

    def serialize_log_record(self, log_data: dict[str, Any]) -> Any:  # a dict, not a str
        return log_data


class OutputHandler(logging.Handler):
    def __init__(self, output: LogOutput) -> None:
        super().__init__()
        self.output = output
        self.setFormatter(
            _DictFormatter(
                "{created}{levelname}{name}{message}",
                style="{",
                rename_fields={"created": "@timestamp", "levelname": "log.level", "name": "log.logger"},
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data: dict[str, Any] = self.format(record)  # type: ignore[assignment]
            scope = REQUEST_SCOPE.get()
            if scope is not None:
                data.setdefault("http.request.id", scope[0])
                if scope[1]:
                    data.setdefault("trace.id", scope[1])
            self.output.emit(data)
        except Exception:  # pragma: no cover - logging must never raise into the caller
            self.handleError(record)


def setup_logging(cfg: Logging, output: LogOutput) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(OutputHandler(output))
    root.setLevel(cfg.level.upper())
    # aiohttp's own access log is replaced by ours; its error logs stay on (they go through `root`).
    logging.getLogger("aiohttp.access").disabled = True


def access_record(
    *,
    request_id: str,
    client_ip: str,
    method: str,
    path: str,
    status: int,
    bytes_in: int,
    bytes_out: int,
    started: float,
    upstream_ms: float | None,
    user_agent: str | None,
    extra: dict[str, Any],
    query: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Raw values: the writer thread redacts and caps them (LogOutput.prepare)."""
    now = time.monotonic()
    record: dict[str, Any] = {
        "@timestamp": time.time(),
        "log.level": "info",
        "event.dataset": "bastion.access",
        "http.request.id": request_id,
        "client.ip": client_ip,
        "http.request.method": method,
        "url.path": path,
        "http.response.status_code": status,
        "http.request.body.bytes": bytes_in,
        "http.response.body.bytes": bytes_out,
        "bastion.duration_ms": round((now - started) * 1000, 3),
        "bastion.upstream_ms": None if upstream_ms is None else round(upstream_ms, 3),
        "user_agent.original": cap(user_agent, 512),
    }
    if query:
        record["url.query"] = query
    if headers:
        for name, value in headers.items():
            record["http.request.header." + name] = value
    if extra:
        record.update(extra)
    return record
