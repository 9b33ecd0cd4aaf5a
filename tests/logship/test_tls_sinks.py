"""The TLS paths of the tcp, syslog (RFC 5425) and http sinks, against real TLS collectors.

A throwaway CA signs the collectors' certificate (IP SAN 127.0.0.1, DNS SAN localhost): syslog-ng
with TLS sources (`TlsSyslogNg`), an aiohttp server with an SSL context (`HttpsCollector`), and a
Python `ssl` NDJSON server (`TlsLineCollector`, which sends TLS 1.3 session tickets).
Each test asserts on what arrived. Where nothing may arrive, the test spies on the sink's
`transport.connect` and waits for several failed attempts, each of which must be a certificate
verification failure, before it checks that the collector holds nothing: no fixed sleep decides it.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from proxy.config_logging import Logging
from proxy.logs import LogOutput
from proxy.logship import QueuedSink
from tests.logship.conftest import HttpsCollector, TlsSyslogNg
from tests.pki import Pki

_DELIVERY = {"backoff_min": "20ms", "backoff_max": "100ms", "confirm_after": "300ms"}
_DEADLINE = 10.0


def _output(*sinks: dict[str, Any]) -> LogOutput:
    return LogOutput.from_config(Logging.model_validate({"sinks": [{"delivery": _DELIVERY, **s} for s in sinks]}))


def _emit(out: LogOutput, n: int, **extra: Any) -> list[dict[str, Any]]:
    """`n` records; LogOutput gives each its `event.id` (and turns `@timestamp` into the ISO string)
    in place on its writer thread, so once they have arrived the dicts hold exactly what was sent."""
    levels = ("info", "warning", "error", "debug", "critical", "notice")
    records = [
        {"@timestamp": time.time(), "log.level": levels[i % len(levels)], "event.dataset": "bastion.test",
         "message": f"record {i}", "n": i, **extra}
        for i in range(n)
    ]  # fmt: skip
    for r in records:
        out.emit(r)
    return records


async def _close(out: LogOutput, timeout: float = 2.0) -> None:
    await asyncio.to_thread(out.close, timeout)  # an https collector needs this loop meanwhile


async def _until(what: str, check: Callable[[], bool], timeout: float = _DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.02)


def _tests(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event.dataset") == "bastion.test"]


class FailedConnects:
    """Spy on a sink's `transport.connect`: keeps what each failed attempt raised."""

    def __init__(self, sink: QueuedSink) -> None:
        self.errors: list[OSError] = []
        self._connect = sink.transport.connect
        sink.transport.connect = self  # type: ignore[method-assign]

    def __call__(self) -> None:
        try:
            self._connect()
        except OSError as exc:
            self.errors.append(exc)
            raise


def _tls(pki: Pki, case: dict[str, Any]) -> dict[str, Any]:
    """A case's `tls:` section, with "CA" and "OTHER_CA" standing for the generated PEM files."""
    files = {"CA": str(pki.ca), "OTHER_CA": str(pki.other_ca)}
    return {k: files.get(v, v) if isinstance(v, str) else v for k, v in case.items()}


# tls: section → delivered? (the collector's certificate: CA-signed, for 127.0.0.1 and localhost)
VERIFICATION = [
    pytest.param({"ca_file": "CA"}, True, id="ca_file"),
    pytest.param({"ca_file": "CA", "server_name": "localhost"}, True, id="server_name-in-cert"),
    pytest.param({}, False, id="default-verifies-against-system-store"),
    pytest.param({"verify": True}, False, id="verify-true-system-store"),
    pytest.param({"verify": False}, True, id="verify-false"),
    pytest.param({"ca_file": "CA", "server_name": "collector.example"}, False, id="wrong-server_name"),
    pytest.param({"ca_file": "OTHER_CA"}, False, id="wrong-ca"),
    pytest.param({"verify": False, "server_name": "collector.example"}, True, id="verify-false-any-name"),
]


async def _assert_refused(out: LogOutput, spy: FailedConnects, emitted: list[dict[str, Any]]) -> None:
    """With every record in its queue, the sink tried three more times, and every handshake failed
    on the certificate; nothing was sent and every record is still queued."""
    sink = out.sinks[0]
    await _until("the records in the sink's queue", lambda: sink.stats().queued == len(emitted))
    tried = len(spy.errors)
    await _until("three more failed handshakes", lambda: len(spy.errors) >= tried + 3)
    for err in spy.errors:
        assert "CERTIFICATE_VERIFY_FAILED" in str(err), repr(err)
    st = sink.stats()
    assert (st.connected, st.reconnects, st.sent, st.window) == (False, 0, 0, 0)
    assert st.queued == len(emitted) and st.dropped == 0


# -- tcp and syslog (syslog-ng) ------------------------------------------------------------------------


def _stream_sink(kind: str, collector: TlsSyslogNg, tls: dict[str, Any]) -> dict[str, Any]:
    port = collector.raw_port if kind == "tcp" else collector.syslog_port
    return {"type": kind, "host": "127.0.0.1", "port": port, "tls": tls}


def _received(kind: str, collector: TlsSyslogNg) -> list[dict[str, Any]]:
    return _tests(collector.raw_records() if kind == "tcp" else [m for *_, m in collector.syslog_lines()])


@pytest.mark.parametrize("kind", ["tcp", "syslog"])
async def test_tls_with_the_ca_delivers_every_record_once(kind: str, tls_syslog_ng: TlsSyslogNg, pki: Pki) -> None:
    out = _output(_stream_sink(kind, tls_syslog_ng, {"ca_file": str(pki.ca)}))
    sink = out.sinks[0]
    emitted = _emit(out, 200)
    await _until("200 records at the collector", lambda: len(_received(kind, tls_syslog_ng)) >= 200)
    # the resend window is confirmed by `alive()` on the SSLSocket: a false "dead" (e.g. on TLS 1.3
    # session tickets, which make the socket readable) would reconnect and send duplicates
    await _until("the window confirmed", lambda: sink.stats().sent == 200)
    await _close(out)
    assert _received(kind, tls_syslog_ng) == emitted  # every record, in order, content intact, no duplicate
    st = sink.stats()
    assert (st.reconnects, st.dropped, st.queued, st.window) == (1, 0, 0, 0)


async def test_syslog_over_tls_keeps_the_rfc5424_fields(tls_syslog_ng: TlsSyslogNg, pki: Pki) -> None:
    out = _output(
        {**_stream_sink("syslog", tls_syslog_ng, {"ca_file": str(pki.ca)}), "app_name": "bastion-tls", "facility": 20}
    )
    emitted = _emit(out, 12, note='an "octet-counted" message\nmay hold a newline')
    await _until("12 messages", lambda: len(tls_syslog_ng.syslog_fields()) >= 12)
    await _close(out)
    got = tls_syslog_ng.syslog_fields()
    assert [m["msg"] for m in got] == emitted  # the newline inside did not split a message
    severity = {"critical": 2, "error": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
    for m, r in zip(got, emitted, strict=True):
        assert m["pri"] == str(20 * 8 + severity[r["log.level"]])  # local4
        sent = datetime.datetime.fromisoformat(r["@timestamp"].replace("Z", "+00:00"))
        assert datetime.datetime.fromisoformat(m["timestamp"]) == sent  # the record's own time, to the ms
        assert (m["hostname"], m["app_name"], m["procid"], m["msgid"], m["sd"]) == (
            socket.gethostname(), "bastion-tls", str(os.getpid()), "test", "",
        )  # fmt: skip


@pytest.mark.parametrize("kind", ["tcp", "syslog"])
@pytest.mark.parametrize(("case", "delivered"), VERIFICATION)
async def test_tls_verification_of_tcp_and_syslog_sinks(
    kind: str, case: dict[str, Any], delivered: bool, tls_syslog_ng: TlsSyslogNg, pki: Pki
) -> None:
    out = _output(_stream_sink(kind, tls_syslog_ng, _tls(pki, case)))
    spy = FailedConnects(out.sinks[0])
    emitted = _emit(out, 20)
    if delivered:
        await _until("20 records at the collector", lambda: len(_received(kind, tls_syslog_ng)) >= 20)
        await _close(out)
        assert _received(kind, tls_syslog_ng) == emitted
        assert spy.errors == []
    else:
        await _assert_refused(out, spy, emitted)
        await _close(out, 0.2)
        assert _received(kind, tls_syslog_ng) == []
        assert out.sinks[0].stats().dropped == 20  # no spool: counted, never silently lost


@pytest.mark.parametrize("client_cert", [True, False], ids=["client-cert", "no-client-cert"])
async def test_mutual_tls_sends_the_client_certificate(client_cert: bool, tls_syslog_ng: TlsSyslogNg, pki: Pki) -> None:
    tls: dict[str, Any] = {"ca_file": str(pki.ca)}
    if client_cert:
        tls |= {"cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    out = _output({"type": "tcp", "host": "127.0.0.1", "port": tls_syslog_ng.mtls_port, "tls": tls})
    sink = out.sinks[0]
    emitted = _emit(out, 20)
    if client_cert:
        await _until("20 records at the collector", lambda: len(_tests(tls_syslog_ng.mtls_records())) >= 20)
        await _until("the window confirmed", lambda: sink.stats().sent == 20)
        await _close(out)
        assert _tests(tls_syslog_ng.mtls_records()) == emitted
        return
    # TLS 1.3: the client's side of the handshake completes before the server checks the (missing)
    # certificate, so `connect` and the write succeed; the server's alert then shows in `alive()`,
    # and the records go back to be resent instead of being counted as delivered
    await _until("three connections refused by the collector", lambda: sink.stats().reconnects >= 3)
    assert sink.stats().sent == 0
    await _close(out, 0.2)
    assert tls_syslog_ng.mtls_records() == []
    assert (sink.stats().sent, sink.stats().dropped) == (0, 20)


async def test_tls_collector_restart_is_noticed_and_loses_nothing(tls_syslog_ng: TlsSyslogNg, pki: Pki) -> None:
    """`alive()` on the SSLSocket tells an open connection (records confirmed) from one the collector
    closed (records written into it are resent after the restart, not counted as delivered)."""
    out = _output(_stream_sink("tcp", tls_syslog_ng, {"ca_file": str(pki.ca)}))
    sink = out.sinks[0]
    before = _emit(out, 50, phase="before")
    await _until("the first 50 confirmed", lambda: sink.stats().sent == 50)
    await asyncio.to_thread(tls_syslog_ng.stop)
    during = _emit(out, 50, phase="during")
    await _until("the closed connection noticed", lambda: not sink.stats().connected)
    await asyncio.to_thread(tls_syslog_ng.start)
    await _until("the second 50 confirmed", lambda: sink.stats().sent >= 100 and not sink.stats().window)
    await _close(out)
    got = _tests(tls_syslog_ng.raw_records())
    ids = [r["event.id"] for r in got]
    assert {r["event.id"] for r in before + during} == set(ids)  # may duplicate (at-least-once), never lose
    assert [r for r in got if r["phase"] == "during"][-50:] == during
    assert sink.stats().reconnects >= 2 and sink.stats().dropped == 0


class TlsLineCollector:
    """NDJSON over TLS from Python's `ssl` server, which (unlike syslog-ng) sends TLS 1.3 session
    tickets after the handshake: they make the client's socket readable with no application data."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        assert ctx.num_tickets > 0
        self.ctx = ctx
        self.lines: list[bytes] = []
        self.versions: list[str | None] = []
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.versions.append(writer.get_extra_info("ssl_object").version())
        try:
            while line := await reader.readline():
                self.lines.append(line)
        finally:
            writer.close()

    async def __aenter__(self) -> TlsLineCollector:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def records(self) -> list[dict[str, Any]]:
        return _tests([orjson.loads(line) for line in self.lines])


async def test_tls13_session_tickets_do_not_look_like_a_dead_collector(pki: Pki) -> None:
    async with TlsLineCollector(pki.server_context()) as collector:
        out = _output({"type": "tcp", "host": "127.0.0.1", "port": collector.port, "tls": {"ca_file": str(pki.ca)}})
        sink = out.sinks[0]
        emitted = _emit(out, 50)
        await _until("the window confirmed", lambda: sink.stats().sent == 50)
        await _close(out)
        await _until("the connection closed", lambda: len(collector.records()) >= 50)
    assert collector.versions == ["TLSv1.3"]  # one connection: `alive()` never mistook a ticket for EOF
    assert collector.records() == emitted  # so nothing was resent either
    assert sink.stats().reconnects == 1


# -- http over https (aiohttp) -------------------------------------------------------------------------


def _http_sink(collector: HttpsCollector, tls: dict[str, Any] | None) -> dict[str, Any]:
    sink: dict[str, Any] = {"type": "http", "url": collector.url, "flush_interval": "20ms"}
    return sink if tls is None else {**sink, "tls": tls}


@pytest.mark.parametrize(
    ("case", "delivered"), [*VERIFICATION, pytest.param(None, False, id="https-url-without-tls-section")]
)
async def test_tls_verification_of_the_https_sink(
    case: dict[str, Any] | None, delivered: bool, https_collector: HttpsCollector, pki: Pki
) -> None:
    out = _output(_http_sink(https_collector, None if case is None else _tls(pki, case)))
    spy = FailedConnects(out.sinks[0])
    emitted = _emit(out, 20)
    if delivered:
        await _until("20 records at the collector", lambda: len(_tests(https_collector.records)) >= 20)
        await _close(out)
        assert _tests(https_collector.records) == emitted
        assert spy.errors == [] and out.sinks[0].stats().sent == 20
    else:
        await _assert_refused(out, spy, emitted)
        await _close(out, 0.2)
        assert https_collector.records == [] and https_collector.batches == 0
        assert out.sinks[0].stats().dropped == 20
